// What the receiver must do with each datagram we send: the drop reason
// that docs/PROTOCOL.md §6 prescribes, written from the document (not from
// squtun's code; only the reasons' names are squtun's own), so the suite
// can check that the daemon's drop counters grew by exactly these numbers.

import Shared

/// The drop reasons, named as in PROTOCOL.md and `squtun status`. The
/// checks are what a datagram can be predicted to fail; rate-limited is
/// not a check of its own.
typealias Reason = DropReason

extension DropReason {
    static let checks: [DropReason] = [.malformed, .reflected, .oldSession, .badMAC, .unknownSender, .timeSkew, .replay,
                                       .oldVersion, .wrongSuite, .wrongMode, .unknownKey]
}

/// The receiver as the attacker knows it: its own session, its peer's
/// current session (from `squtun status`), whether our datagrams appear to
/// come from its peer's current address, and its time limit.
struct TargetModel {
    var ownSession: UInt64
    var peerSession: UInt64?
    var fromPeer: Bool
    var skewLimitMs: UInt64
    /// The receiver's suite (`--cipher`): which suite byte it takes and its length rule.
    var suite: SuiteID
    /// The key id it expects (`--client`/`--key-id`; 0 between point-to-point peers).
    var keyId: UInt32
    /// The receiver's mode (`--tap`: TAP, Ethernet frames, flags bit 0 set).
    var ethernet: Bool

    init(_ args: Args) throws(AttackError) {
        suite = try suiteOption(args)
        keyId = try keyIdOption(args)
        ethernet = args.flag("tap")
        ownSession = try args.uint64("own")
        peerSession = try args.optionalSession("peer")
        fromPeer = args.flag("from-peer")
        skewLimitMs = UInt64(try args.int("limit-s", default: 30)) * 1000
    }
}

/// What happens after check 3 for a datagram of this kind.
enum AfterHeader {
    /// We do not have the key: check 4 fails.
    case macFails
    /// A genuine datagram recorded earlier: MAC good, time good, and its
    /// counter already used (check 6 or 7: replay).
    case genuineReplay
    /// Sealed by us with the right key at `offsetMs` from the clock, with a
    /// counter the peer has already used (or too old for the window).
    case sealedUsedCounter(offsetMs: Int64)
}

/// Checks 1 to 3 of PROTOCOL.md §6 (v2), then the class's fate.
func predict(_ d: UnsafeRawBufferPointer, _ t: TargetModel, _ after: AfterHeader) -> Reason {
    let n = d.count
    // 1a–1e, for a receiver of the model's suite and mode between
    // two point-to-point peers (or a server's client whose key id is the
    // model's): length and version, suite, type and flags and mode, key
    // id, the suite's length rule.
    guard n >= 32, n <= 65535 else { return .malformed }
    if d[0] == 1 { return .oldVersion }
    guard d[0] == 2 else { return .malformed }
    guard d[1] == t.suite.rawValue else { return .wrongSuite }
    guard d[2] == 1 || d[2] == 2, d[3] & 0xfe == 0 else { return .malformed }
    // 1c: bit 0 is the sender's mode; the other mode's datagrams are wrong-mode.
    guard d[3] == (t.ethernet ? Wire.flagEthernet : 0) else { return .wrongMode }
    guard d.baseAddress!.get32(4) == t.keyId else { return .unknownKey }
    // (the length rules as the document gives them: CBC 80 + 16k, k >= 1; AEAD 48 + p)
    let wellFormed = t.suite == .aes256CBCHMACSHA256 ? n >= 96 && (n - 80) % 16 == 0 : n >= 48
    guard wellFormed else { return .malformed }
    let session = d.baseAddress!.get64(8)
    // 2. Reflected.
    if session == t.ownSession { return .reflected }
    // 3. Older session.
    if let p = t.peerSession, session < p { return .oldSession }
    switch after {
    case .macFails:
        // (an AEAD's tag fails the same check 4)
        return t.fromPeer ? .badMAC : .unknownSender
    case .genuineReplay:
        return .replay
    // (Check 10's rule for TAP mode, a data payload of at least 14 bytes,
    // comes after the MAC, time and window checks: every datagram we seal
    // carries a marker frame of 42 bytes or more, and fails before it.)
    case .sealedUsedCounter(let offset):
        if t.skewLimitMs > 0 && offset.magnitude > t.skewLimitMs { return .timeSkew }
        return .replay
    }
}

/// Datagrams sent and the drops they must cause, printed as one line:
/// `sent=N malformed=a reflected=b old-session=c bad-mac=d unknown-sender=e time-skew=f replay=g`
struct Tally {
    var sent = 0
    var failed = 0
    var expected = [Int](repeating: 0, count: Reason.allCases.count)

    mutating func count(_ r: Reason, sent ok: Bool) {
        if ok {
            sent += 1
            expected[r.rawValue] += 1
        } else {
            failed += 1
        }
    }

    mutating func add(_ other: Tally) {
        sent += other.sent
        failed += other.failed
        for i in expected.indices { expected[i] += other.expected[i] }
    }

    var line: String {
        var s = "sent=\(sent)"
        for r in Reason.checks { s += " \(r.name)=\(expected[r.rawValue])" }
        if failed > 0 { s += " send-failures=\(failed)" }
        return s
    }
}
