// squtun-attack: the hostile-network test tool of Tests/e2e/hostile.sh
// (scripts/hostile). Test-only, never installed. It plays the attacker on
// the underlay: records genuine datagrams, replays, reflects, tampers with
// and forges them, seals datagrams with chosen sessions and timestamps
// (with the project's own crypto), floods junk, and watches a tun device
// for anything that got through. See docs/HOSTILE.md.
import Glibc

let usage = """
    usage: squtun-attack COMMAND [--option value ...]
      capture    --iface IF --dport P [--src IP] [--count N] [--timeout S] --out FILE
                 [--immediate TARGET]             record (and at once resend) genuine datagrams
      replay     --in FILE TARGET [--repeat K]    send recorded datagrams again
      reflect    --in FILE TARGET                 the same, aimed at their own sender
      tamper     --in FILE TARGET [--datagrams K] [--append MAX]
                                                  every 1-bit flip, every truncation, appends
      forge      --kind random|header|wrongkey TARGET [--rounds R] [--max-length L] [--count N]
      skew       --key FILE --session S --offset-ms O --count N [--counter-base B] TARGET
      oldsession --key FILE --session S --count N TARGET
      seal       --key FILE --session S --count N [--counter-base B] TARGET
                                                  fresh datagrams sealed with FILE's key (under --client's key id)
      flood      --to IP:PORT [--from IP:PORT] --rate PPS --seconds S [--header-fraction F]
      tunwatch   --iface tun0 --state FILE [--log FILE] [--pattern HEX] [--seconds MAX] [--tap]
    TARGET: --to IP:PORT --from IP:PORT (any source; raw socket) --own S --peer S|none
            [--from-peer] [--limit-s L] [--rate PPS] [--mtu M] [--cipher NAME]
            [--client NAME | --key-id N] [--tap] [--other-mode]
    --cipher NAME: the suite of the attacked end (default aes-256-cbc-hmac-sha256):
    what capture recognises, forge and skew/oldsession seal, predictions assume.
    --client NAME | --key-id N: the key id of a server's client (default 0, point
    to point): what capture recognises, forge/seal/flood write, replay writes
    over a recorded datagram's, predictions assume.
    --tap: the attacked end runs in TAP mode: capture wants, forge/skew/oldsession/
    seal/flood write the Ethernet flag (flags bit 0; a sealed payload is an
    Ethernet frame), predictions are a TAP receiver's; tunwatch --tap reads a
    TAP device's frames. --other-mode: write the other mode's flag (wrong-mode).
    Attack commands end with one line: sent=N and, per drop reason, how many
    of those datagrams the receiver must drop for it (docs/PROTOCOL.md §6).
    """

let argv = CommandLine.arguments
guard argv.count >= 2 else {
    warn(usage)
    exit(2)
}
do {
    let args = try Args(argv.dropFirst(2))
    switch argv[1] {
    case "capture": try captureCommand(args)
    case "replay", "reflect": try replayCommand(args)
    case "tamper": try tamperCommand(args)
    case "forge": try forgeCommand(args)
    case "skew": try sealCommand(args, oldSession: false)
    case "oldsession": try sealCommand(args, oldSession: true)
    case "seal": try impersonateCommand(args)
    case "flood": try floodCommand(args)
    case "tunwatch": try tunwatchCommand(args)
    case "-h", "--help", "help":
        say(usage)
    default:
        warn("unknown command '\(argv[1])'\n" + usage)
        exit(2)
    }
} catch {
    warn(error.message)
    exit(error.isUsage ? 2 : 1)
}

extension AttackError {
    var isUsage: Bool { if case .usage = self { true } else { false } }
}
