import ArgumentParser
import Shared

/// `squtun status IFACE`: asks the running daemon for its counters through
/// its root-only control socket (the worker answers; see docs/OPERATIONS.md).
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the peer, the last authenticated packet, traffic and drop counters of a running tunnel.",
        discussion: """
            Reads the daemon's control socket, which only root can open: \(TunnelOptions.controlTemplate) \
            or the path given with --control PATH.
            """
    )

    @Argument(help: ArgumentHelp("Tun interface of the tunnel.", valueName: "iface"))
    var interface: String

    /// The root command's options: `--control PATH` given anywhere on the
    /// line lands here (ArgumentParser's way to share a parent's options).
    @OptionGroup(visibility: .private) var tunnel: TunnelOptions

    func validate() throws {
        do {
            try OptionCheck.interfaceName(interface, option: "status")
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        let path = tunnel.control ?? TunnelOptions.defaultControlSocket(interface: interface)
        do {
            let text = try ControlSocket.connectAndRead(path: path, interface: interface)
            try Output.stdout(text)
        } catch let error as SystemError {
            Output.error(error.description)
            throw ExitCode.failure
        }
    }
}
