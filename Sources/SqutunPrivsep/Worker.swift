import SqutunSystem
import SqutunDataPath
import Glibc
import CShim
import Shared
import SqutunConfig
import squtun_crypto

/// The unprivileged worker: `squtun --worker`, spawned by the root helper
/// with the channel on fd 3. Before it touches a packet, in this order:
///  1. asks the helper (the monitor, MonitorTable.swift) for its setup:
///     `hello` → `config`, `keyRequest` → `key`, `fdsRequest` → `fds`
///     (any other answer, or a config of another version: one line, exit);
///  2. initialises OpenSSL and derives its session keys (nothing of
///     OpenSSL's may load lazily after the chroot);
///  3. installs the signal handlers (SIGTERM/INT/HUP/USR1 → wake pipe);
///  4. drops privileges: chroot, chdir, groups, gid, uid, verified, no_new_privs;
///  5. installs the seccomp allow-list;
///  6. tells the helper `ready`, then runs the data path.
package enum Worker {
    /// The worker's name in ps, top and pgrep (comm, at most 15 bytes).
    package static let processName = "squtun-worker"

    package static func main() -> Never {
        // Before the key arrives: exec made this process dumpable again.
        let dumpable = squtun_no_core_dumps()
        // A name an operator recognises in ps/top/pgrep (failure leaves
        // "exe", which is harmless).
        _ = squtun_set_name(processName)
        // Owned for the process's whole life: the log sink only borrows
        // it, so it must stay open until exit, also on the error path
        // (where its last use would otherwise end it before the line goes out).
        let channel = Channel(adopting: Channel.workerFD)
        let status: Int32 = withExtendedLifetime(channel) {
            Log.sink = .channel(channel.logPort)
            Log.forDataPath()
            if dumpable != 0 {
                Log.error("worker: cannot switch core dumps off (prctl: \(Errno.current))")
                return 1
            }
            do {
                return try run(channel)
            } catch {
                Log.error("\(error)")
                return 1
            }
        }
        exit(status)
    }

    private static func run(_ channel: borrowing Channel) throws -> Int32 {
        // 1. Setup, asked for in this order.
        let config = try ask(channel, .hello(version: ChannelCodec.monitorVersion)) {
            if case .config(let config) = $0 { config } else { nil }
        }
        #if DEBUG
        WorkerFault.duringSetup(channel: channel)
        #endif
        if config.server { return try WorkerServer.run(channel, config: config) }
        let psk = try ask(channel, .keyRequest) { if case .key(let key) = $0 { key } else { nil } }
        let passed = try ask(channel, .fdsRequest) { if case .fds(let list) = $0 { list } else { nil } }
        func take(_ role: PassedFDRole) -> FileDescriptor? { passed.first { $0.role == role }?.fd }
        guard let tunFD = take(.tun), let udpFD = take(.udp) else {
            passed.closeAll()
            throw PrivsepError.missingDescriptor(take(.tun) == nil ? .tun : .udp)
        }
        // Without it, `squtun status` has nobody to answer.
        let controlFD = take(.control)
        let tun = Tun(adopting: tunFD, name: config.interface)
        // The sealer's mode comes from the config, the frames' from the
        // device: they must agree, or every datagram would be refused.
        guard tun.isTap == config.tap else {
            udpFD.close()
            controlFD?.close()
            throw PrivsepError.deviceModeMismatch(interface: config.interface, tap: config.tap)
        }
        let udp = try UDPSocket(adopting: udpFD)

        // 2. OpenSSL, before the chroot.
        let start = config.runStart
        let crypto = try TunnelCrypto(suite: config.suite, psk: psk, start: start, formerSessions: config.formerSessions,
                                      skewSeconds: Int(config.skewSeconds), keyId: config.keyId,
                                      ethernet: config.tap)
        // The PSK stays: the opener derives keys for the peer's next session.

        // 3. Signals.
        let wake = try Signals.install()

        // 4. Privileges: started by the root helper, always dropped.
        try Privileges.dropPrivileges(chroot: config.chrootPath, uid: config.uid, gid: config.gid)
        // 5. Seccomp.
        try Seccomp.install()

        // 6. Run.
        try channel.send(.ready)
        #if DEBUG
        WorkerFault.act(channel: channel)
        #endif
        let path = DataPath(
            settings: .init(interface: config.interface, keepaliveMs: UInt64(config.keepaliveSeconds) * 1000,
                            configuredPeer: config.peer),
            tun: tun, udp: udp, wake: wake, channel: channel.fd, control: controlFD,
            crypto: crypto, log: Log.write,
            logLinesDropped: { Log.droppedLines })
        return DataPath.exitStatus(path.run())
    }
}

/// One request and its answer, which `expected` takes apart; any other
/// answer is an error (its descriptors closed).
func ask<Answer>(_ channel: borrowing Channel, _ request: ChannelMessage,
                         expected: (ChannelMessage) -> Answer?) throws(PrivsepError) -> Answer {
    try channel.send(request)
    let answer = try channel.receive(from: .helper)
    guard let wanted = expected(answer) else {
        answer.fileDescriptors.forEach { $0.close() }
        throw .unexpectedAnswer(request: request.type, got: answer.type)
    }
    return wanted
}

extension WorkerConfig {
    /// This run's start on both clocks. The helper read both a moment ago;
    /// the monotonic one, which the channel does not carry, is found again
    /// from the time since.
    var runStart: RunStart {
        let wallNow = WallClock.nowMs(), monotonicNow = MonotonicClock.nowMs()
        let since = wallNow >= startTimeMs ? wallNow - startTimeMs : 0
        return RunStart(session: session, wallMs: startTimeMs, monotonicMs: monotonicNow &- since)
    }
}

extension DataPath {
    /// The process exit status for how the data path ended, logged.
    package static func exitStatus(_ end: DataPathExit) -> Int32 {
        switch end {
        case .signal(let s):
            Log.notice("stopping on signal \(s)")
            return 0
        case .channelClosed:
            return 1  // the helper is gone: nobody to log to
        case .tunGone(let why), .fatal(let why):
            Log.error(why)
            return 1
        }
    }
}
