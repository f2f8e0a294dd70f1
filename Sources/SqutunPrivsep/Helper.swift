import SqutunSystem
import Glibc
import Shared
import SqutunConfig
import squtun_crypto

/// The root helper: the process the user starts as root. It
///  1. checks and opens everything (Prepared: key, peer, user, chroot,
///     tun, UDP; OpenSSL is the worker's) — every failure one line on
///     stderr, exit 1;
///  2. detaches unless -f (the starting command waits for the verdict);
///  3. takes the pid file and creates the root-only status socket;
///  4. spawns the worker (`squtun --worker`, channel on fd 3) and answers
///     its setup requests from the monitor's table (MonitorTable.swift):
///     config, key, fds, each once, then closes and wipes its own copies;
///  5. waits for `ready`, then only supervises: forwards SIGTERM, SIGINT,
///     SIGHUP, SIGUSR1; logs what the worker logs; when the worker exits,
///     removes the pid file and socket and exits with a meaningful status.
/// Exit status: 0 stopped by a signal, 1 startup or runtime failure,
/// 2 the worker died abnormally (killed or crashed).
package enum Helper {
    /// How long the worker has to report ready, and to stop after SIGTERM.
    package static let readyTimeoutMs: Int32 = 10_000
    package static let stopGraceMs: Int32 = 1_500

    package static func run(_ config: TunnelConfig) throws -> Never {
        if config.server != nil { try ServerHelper.run(config) }
        try Prepared.run(config, privileged: true, start: start)
    }

    private static func start(_ p: consuming Prepared, control: FileDescriptor, pidFile: FileDescriptor, daemon: Daemonize?) throws -> Int32 {
        let config = p.config, peer = p.peer, offloads = p.tun.vnetHeader
        let wake = try Signals.install()

        let pair = try Channel.makePair()
        let mine = pair.helper, theirs = pair.worker
        let worker = try Spawn.worker(channel: theirs, extraEnvironment: WorkerFault.passThrough())
        theirs.close()
        guard let user = p.user else { preconditionFailure("helper without a user") }
        // Handed out when the worker asks (the table); whatever it has not
        // asked for once setup ends is released: the supervisor keeps
        // nothing of the data path. The provisions take over closing the
        // tun's and the socket's fds (after sending them to the worker).
        var workerConfig = WorkerConfig(
            session: p.start.session, startTimeMs: p.start.wallMs, skewSeconds: UInt32(config.skewSeconds),
            keepaliveSeconds: UInt32(config.keepaliveSeconds),
            uid: user.uid, gid: user.gid, peer: peer, chrootPath: config.chrootDirectory,
            interface: config.interface, formerSessions: p.formerSessions, suite: config.cipher)
        workerConfig.keyId = config.clientID.map(ClientKeyID.keyId(for:)) ?? 0
        workerConfig.tap = config.tap
        let key = p.psk
        let provisions = WorkerProvisions(
            config: workerConfig, key: key,
            fds: [PassedFD(.tun, p.tun.release()), PassedFD(.udp, p.udp.release()), PassedFD(.control, control)])

        // The offloads belong to the device and outlive the worker.
        defer { if offloads { Tun.clearOffloads(name: config.interface) } }
        var supervisor = Supervisor(worker: worker, channel: mine, wake: wake, provisions: provisions)
        return try supervisor.run(
            daemon: daemon,
            upLine: "tunnel on \(config.interface) is up: worker pid \(worker) as \(user.name) in \(config.chrootDirectory)"
                + (peer.map { ", peer \($0)" } ?? ", waiting for the peer"))
    }
}
