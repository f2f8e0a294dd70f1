import SqutunSystem
import SqutunDataPath
import SqutunPrivsep
import ArgumentParser
import Shared
import SqutunConfig

/// `squtun status IFACE`: asks the running daemon for its counters through
/// its root-only control socket (the worker answers; see docs/OPERATIONS.md).
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the peer, the last authenticated packet, traffic and drop counters of a running tunnel.",
        usage: "squtun status <iface> [--json] [--pidfile <path> | --control <path>]",
        discussion: """
            Reads the daemon's control socket, which only root (or the user a single-process \
            squtun runs as) can open (default: \(TunnelOptions.controlTemplate)).
            --control <path>: that socket, as given to the daemon with --control.
            --pidfile <path>: the socket that goes with that pid file (.pid replaced by .sock), \
            as given to the daemon with --pidfile.
            """
    )

    @Argument(help: ArgumentHelp("Tun interface of the tunnel (a server: its name, the tun pattern without %d).",
                                 valueName: "iface"))
    var interface: String

    @Flag(help: "The same as one JSON object (a server's clients as a list), for monitoring.")
    var json = false

    /// The root command's options: `--control PATH` given anywhere on the
    /// line lands here (ArgumentParser's way to share a parent's options).
    /// Private, or the help would list every tunnel option; --control is
    /// described in `usage` and `discussion` instead. (A `--control` of
    /// Status's own is refused as a duplicate name, and the parent would
    /// take the value anyway.)
    @OptionGroup(visibility: .private) var tunnel: TunnelOptions

    func validate() throws {
        do {
            try OptionCheck.interfaceName(interface, option: "status")
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        let path = tunnel.controlSocketPath(interface: interface)
        do {
            let text = try ControlSocket.connectAndRead(path: path, interface: interface)
            // The worker wrote it: nothing in it may act on root's terminal.
            let clean = Sanitize.text(text)
            try Output.stdout(json ? StatusJSON.convert(clean) : clean)
        } catch let error as SystemError {
            Output.error(error.description)
            throw ExitCode.failure
        }
    }
}
