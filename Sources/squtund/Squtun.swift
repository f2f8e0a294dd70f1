import ArgumentParser
import Shared

/// The root command is the tunnel itself, as in SquTUN: `squtun -i tun0 -k key ...`.
/// Helper commands (genkey, later status) are subcommands; ArgumentParser
/// matches them by name before treating anything as tunnel options.
struct Squtun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "squtun",
        abstract: "Encrypted IP-over-UDP tunnel (SquTUN's options).",
        usage: """
            squtun -i IFACE -k KEYFILE [-p HOST [-r PORT]] [-l PORT] [-a SECONDS] [-c SECONDS]
                   [-b ADDRESS] [-f] [-u USER] [--chroot DIR] [--pidfile PATH]
            squtun -m LINK_MTU [--ipv6]
            squtun genkey [FILE]
            """,
        discussion: """
            Without a subcommand, runs the tunnel on interface -i with the key in -k.
            'squtun -m LINK_MTU [--ipv6]' prints the tun MTU to use and exits.
            Errors exit 64 for bad usage and 1 otherwise.
            """,
        subcommands: [Genkey.self]
    )

    @OptionGroup var options: TunnelOptions

    func run() throws {
        switch try options.resolve() {
        case let .mtu(link, underlay):
            // resolve() accepted the link MTU, so a tun MTU exists.
            guard let tun = MTU.tunMTU(linkMTU: link, underlay: underlay) else { throw ExitCode.failure }
            try Output.stdout("\(tun)\n")
        case let .tunnel(config):
            // Reading the key now makes key-file errors final before the daemon exists.
            let key = try KeyFile.read(path: config.keyPath)
            key.wipe()
            Output.error("the tunnel daemon is not available in this build yet")
            throw ExitCode.failure
        }
    }
}
