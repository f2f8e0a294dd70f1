import SqutunSystem
import SqutunDataPath
import SqutunPrivsep
import ArgumentParser
import Glibc
import CShim
import Shared
import SqutunConfig
import squtun_crypto

/// The root command is the tunnel itself, as in SquTUN: `squtun -i tun0 -k key ...`.
/// Helper commands (genkey, status) are subcommands; ArgumentParser
/// matches them by name before treating anything as tunnel options.
struct Squtun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "squtun",
        abstract: "Encrypted IP-over-UDP tunnel (SquTUN's options).",
        usage: """
            squtun -i IFACE -k KEYFILE [-p HOST [-r PORT]] [-l PORT] [-a SECONDS] [-c SECONDS]
                   [--peer-key PUBKEY [--psk PSKFILE]] [--cipher SUITE] [--tap]
                   [-b ADDRESS] [-f] [-u USER] [--chroot DIR] [--pidfile PATH] [--control PATH]
            squtun --config FILE [OPTIONS]
            squtun -m LINK_MTU [--ipv6] [--cipher SUITE] [--tap]
            squtun genkey [FILE]
            squtun genkey --keypair NAME
            squtun pubkey [FILE]
            squtun status IFACE [--pidfile PATH | --control PATH]
            squtun --version
            """,
        discussion: """
            Without a subcommand, runs the tunnel on interface -i with the key in -k:
            a PSK shared by both ends, or this host's private key with the peer's
            public key in --peer-key (and optionally a PSK mixed in with --psk).
            --config FILE reads the same settings from a file, one per line
            ('peer 198.51.100.2'); options on the command line override it.
            --cipher picks the suite, the same on both ends: aes-256-cbc-hmac-sha256
            (the default), aes-256-gcm or chacha20-poly1305.
            --tap: -i names a TAP device and the tunnel carries Ethernet frames
            (layer 2); both ends must give it.
            'squtun -m LINK_MTU [--ipv6] [--cipher SUITE] [--tap]' prints the tun (or
            TAP) MTU to use for that suite and exits.
            Errors exit 64 for bad usage and 1 otherwise.
            """,
        // The libcrypto actually loaded, not the one built against: what a
        // bug report or a security advisory needs to know.
        version: "squtun \(Version.squtun)\n\(OpenSSLVersion.text)",
        subcommands: [Genkey.self, Pubkey.self, Status.self]
    )

    @OptionGroup var options: TunnelOptions

    func run() throws {
        switch try options.resolve() {
        case let .mtu(link, underlay, suite, tap):
            // resolve() accepted the link MTU, so a tun MTU exists.
            guard let tun = MTU.tunMTU(linkMTU: link, underlay: underlay, suite: suite, tap: tap) else {
                throw ExitCode.failure
            }
            try Output.stdout("\(tun)\n")
        case let .tunnel(config):
            // Nothing of the caller's but stdio: a descriptor left open
            // without close-on-exec (`squtun … 7</etc/shadow`, a script's
            // pipe) would stay open for the daemon's whole life, keep a
            // reader waiting for EOF, and in the single-process mode sit
            // next to the data path. (Spawn also closes all but the
            // channel in the worker, whatever the helper holds.)
            squtun_close_from(3)
            // No core dump may hold the key (the worker and the single
            // process say so again for themselves).
            _ = squtun_no_core_dumps()
            if getuid() == 0 {
                try Helper.run(config)
            } else {
                try Solo.run(config)
            }
        }
    }
}
