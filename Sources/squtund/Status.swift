import ArgumentParser
import Shared

/// `squtun status IFACE`: asks the running daemon for its counters through
/// its root-only control socket (the worker answers; see docs/OPERATIONS.md).
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the peer, the last authenticated packet, traffic and drop counters of a running tunnel.",
        discussion: """
            Reads the daemon's control socket, which only root (or the user a single-process \
            squtun runs as) can open: \(TunnelOptions.controlTemplate), the path given with \
            --control PATH, or the one that goes with --pidfile PATH (.pid replaced by .sock), \
            given the same as to the daemon.
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
        // As the daemon derives it (TunnelOptions.resolve).
        let path = tunnel.control ?? TunnelOptions.controlSocket(
            forPidfile: tunnel.pidfile ?? TunnelOptions.defaultPidfile(interface: interface))
        do {
            let text = try ControlSocket.connectAndRead(path: path, interface: interface)
            try Output.stdout(text)
        } catch let error as SystemError {
            Output.error(error.description)
            throw ExitCode.failure
        }
    }
}
