import SqutunSystem
import Glibc
import Shared
import SqutunConfig

/// The root helper of a server (`--server`, docs/SERVER.md). As the
/// point-to-point helper (Helper.swift), in this order: checks and opens
/// everything (the worker's user and chroot, the peers directory — every
/// client with its tunnel key —, the UDP socket), detaches unless -f,
/// takes the pid file and the status socket, spawns the worker and answers
/// its setup (config and descriptors: no key, no tun). Then, unlike it:
/// gives the worker its clients (`clientKey` each), makes a client's tun
/// when the worker asks and the monitor allows (ServerMonitor), runs the
/// hook, and on SIGHUP reads the peers directory again.
package enum ServerHelper {
    package static func run(_ config: TunnelConfig) throws -> Never {
        guard let settings = config.server else { preconditionFailure("not a server") }
        // Said now, not as a failed tun for every client once it is up.
        guard Tun.hasNetAdmin() else { throw PrivsepError.serverNeedsNetAdmin }
        raiseDescriptorLimit(for: settings.maxClients)
        let user = try Prepared.workerUser(config)
        let ipv6 = config.bindAddress.flatMap { SocketAddress.parse(literal: $0, port: 0)?.family } == .ipv6
        let monitor = ServerMonitor(settings: settings, suite: config.cipher, uid: user.uid, gid: user.gid,
                                    ipv6Underlay: ipv6)
        let clients = try monitor.load()
        let udp = try UDPSocket.open(port: config.localPort, bindAddress: config.bindAddress, sharedPort: true)
        monitor.clientSocketTemplate = udp.clientSocketTemplate
        let start = try RunStart.now()
        let daemon = config.foreground ? nil : try Daemonize.detach()
        // The run files are closed before `exit`, which runs no `defer` of its caller.
        func withRunFiles(_ udp: consuming UDPSocket) throws -> Int32 {
            let files = try RunFiles.open(config, start: start)
            defer { files.close(config) }
            return try serve(config, user: user, monitor: monitor, clients: clients, udp: udp, files: files, daemon: daemon)
        }
        do {
            exit(try withRunFiles(udp))
        } catch {
            daemon?.fail("\(error)")
            Log.error("\(error)")
            exit(1)
        }
    }

    /// The worker holds a descriptor per client tun: its soft limit (a
    /// service's is often 1024) must leave room for --max-clients of them
    /// besides its own few. Raised up to the hard limit, which only root
    /// may raise further; said if that is not enough. The worker inherits it.
    private static func raiseDescriptorLimit(for maxClients: Int) {
        let wanted = rlim_t(maxClients + 64)
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < wanted else { return }
        if limit.rlim_max < wanted {
            var raised = rlimit(rlim_cur: wanted, rlim_max: wanted)
            if setrlimit(resource, &raised) == 0 { return }
        }
        limit.rlim_cur = min(wanted, limit.rlim_max)
        _ = setrlimit(resource, &limit)
        if limit.rlim_cur < wanted {
            Log.warning("open files limited to \(limit.rlim_cur): fewer than --max-clients \(maxClients) client tuns fit")
        }
    }

    private static func serve(_ config: TunnelConfig, user: (name: String, uid: UInt32, gid: UInt32),
                              monitor: ServerMonitor, clients: [ServerMonitor.Loaded], udp: consuming UDPSocket,
                              files: RunFiles, daemon: Daemonize?) throws -> Int32 {
        guard let settings = config.server else { preconditionFailure("not a server") }
        let wake = try Signals.install()
        let pair = try Channel.makePair()
        let mine = pair.helper, theirs = pair.worker
        let worker = try Spawn.worker(channel: theirs, extraEnvironment: WorkerFault.passThrough())
        theirs.close()
        monitor.workerPid = worker
        var workerConfig = WorkerConfig(
            session: files.start.session, startTimeMs: files.start.wallMs, skewSeconds: UInt32(config.skewSeconds),
            keepaliveSeconds: UInt32(config.keepaliveSeconds), uid: user.uid, gid: user.gid, peer: nil,
            chrootPath: config.chrootDirectory, interface: config.interface, formerSessions: files.formerSessions,
            suite: config.cipher)
        workerConfig.server = true
        workerConfig.idleTimeoutSeconds = UInt32(settings.idleTimeoutSeconds)
        workerConfig.maxClients = UInt32(settings.maxClients)
        let provisions = WorkerProvisions(config: workerConfig, key: nil,
                                          fds: [PassedFD(.udp, udp.release()), PassedFD(.control, files.control)],
                                          server: monitor)
        var supervisor = Supervisor(worker: worker, channel: mine, wake: wake, provisions: provisions)
        return try supervisor.run(
            daemon: daemon,
            upLine: "server on port \(config.localPort) is up: worker pid \(worker) as \(user.name) in "
                + "\(config.chrootDirectory), clients of \(settings.peersDirectory), tuns \(settings.tunPattern)",
            clients: clients)
    }
}
