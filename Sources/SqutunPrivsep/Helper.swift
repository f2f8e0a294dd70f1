import SqutunSystem
import SqutunDataPath
import Glibc
import Shared
import SqutunConfig

/// The root helper: the process the user starts as root. It
///  1. checks and opens everything (Prepared: key, peer, user, chroot,
///     tun, UDP; OpenSSL is the worker's) — every failure one line on
///     stderr, exit 1;
///  2. detaches unless -f (the starting command waits for the verdict);
///  3. takes the pid file and creates the root-only status socket;
///  4. spawns the worker (`squtun --worker`, channel on fd 3) and hands it
///     config, key and fds, then closes and wipes its own copies;
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
        try Prepared.run(config, privileged: true, start: start)
    }

    private static func start(_ p: Prepared, control: FileDescriptor, pidFile: FileDescriptor, daemon: Daemonize?) throws -> Int32 {
        let config = p.config
        let wake = try Signals.install()

        let (mine, theirs) = try Channel.makePair()
        let worker = try Spawn.worker(channel: theirs, extraEnvironment: WorkerFault.passThrough())
        theirs.close()
        guard let user = p.user else { preconditionFailure("helper without a user") }
        try mine.send(.config(WorkerConfig(
            session: p.start.session, startTimeMs: p.start.wallMs, skewSeconds: UInt32(config.skewSeconds),
            keepaliveSeconds: UInt32(config.keepaliveSeconds), dropPrivileges: true,
            uid: user.uid, gid: user.gid, peer: p.peer, chrootPath: config.chrootDirectory,
            interface: config.interface, formerSessions: p.formerSessions)))
        try mine.send(.key(p.psk))
        try mine.send(.fds(tun: p.tun.fd, udp: p.udp.fd, control: control))
        // The supervisor keeps nothing of the data path.
        p.psk.wipe()
        p.tun.fd.close()
        p.udp.fd.close()
        control.close()

        // The offloads belong to the device and outlive the worker.
        defer { if p.tun.vnetHeader { Tun.clearOffloads(name: config.interface) } }
        var supervisor = Supervisor(worker: worker, channel: mine, wake: wake)
        guard let failure = supervisor.waitForReady() else {
            Log.notice("tunnel on \(config.interface) is up: worker pid \(worker) as \(user.name) in \(config.chrootDirectory)"
                + (p.peer.map { ", peer \($0)" } ?? ", waiting for the peer"))
            daemon?.succeed()
            return supervisor.supervise()
        }
        throw PrivsepError.workerFailed(failure)
    }
}

/// The helper's loop once the worker runs. It never blocks on the worker:
/// the only blocking wait is the reap right after a SIGKILL. A worker that
/// breaks the channel protocol (a malformed or unexpected message) is
/// killed at once; one that hangs up but does not exit gets the stop grace
/// time, then SIGKILL. Either way the helper cleans up and exits non-zero.
package struct Supervisor {
    package let worker: pid_t
    package let channel: Channel
    package let wake: FileDescriptor
    /// The worker's last error line: the reason if it dies during startup.
    private var lastError: String?
    private var stopping = false
    /// When the worker closed its end of the channel (monotonic ms).
    private var hungUpAt: UInt64?

    package init(worker: pid_t, channel: Channel, wake: FileDescriptor) {
        self.worker = worker
        self.channel = channel
        self.wake = wake
    }

    /// nil once the worker said ready; else why it did not.
    package mutating func waitForReady() -> String? {
        let deadline = MonotonicClock.nowMs() + UInt64(Helper.readyTimeoutMs)
        while true {
            let now = MonotonicClock.nowMs()
            if now >= deadline {
                killAndReap()
                return "the worker did not start within \(Helper.readyTimeoutMs / 1000) s"
            }
            switch wait(timeoutMs: Int32(deadline - now)) {
            case .ready: return nil
            case .exited(let status):
                return lastError ?? "the worker exited during startup (\(status))"
            case .misbehaved(let why):
                killAndReap()
                return "the worker broke the channel protocol during startup (\(why)): killed it"
            case .nothing: continue
            }
        }
    }

    /// Runs until the worker is gone; returns the helper's exit status.
    /// After SIGTERM/SIGINT, or once the worker has closed the channel, the
    /// worker has `stopGraceMs` to exit before SIGKILL.
    package mutating func supervise() -> Int32 {
        var killAt: UInt64?
        var killed = false
        while true {
            var timeout: Int32 = -1
            if let k = killAt { timeout = Int32(clamping: max(0, Int64(k) - Int64(MonotonicClock.nowMs()))) }
            switch wait(timeoutMs: timeout) {
            case .exited(let status): return exitCode(status)
            case .misbehaved(let why):
                Log.error("worker \(worker) broke the channel protocol (\(why)): killing it")
                killAndReap()
                return 2
            case .ready:
                Log.error("worker \(worker) broke the channel protocol (a second ready message): killing it")
                killAndReap()
                return 2
            case .nothing: break
            }
            if killAt == nil && !killed {
                if stopping { killAt = MonotonicClock.nowMs() + UInt64(Helper.stopGraceMs) }
                if let h = hungUpAt { killAt = h + UInt64(Helper.stopGraceMs) }
            }
            if let k = killAt, MonotonicClock.nowMs() >= k {
                if hungUpAt != nil && !stopping {
                    Log.warning("worker \(worker) closed its channel but did not exit: killing it")
                } else {
                    Log.warning("worker \(worker) did not stop in time: killing it")
                }
                kill(worker, SIGKILL)
                killAt = nil
                killed = true
            }
        }
    }

    package enum Event { case ready, exited(Spawn.ChildStatus), misbehaved(String), nothing }

    /// One wait: signals (forwarded), worker messages (logged), worker exit.
    private mutating func wait(timeoutMs: Int32) -> Event {
        // After a hang-up the channel is not watched (it would stay readable).
        var fds = [pollfd(fd: hungUpAt == nil ? channel.fd.rawValue : -1, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake.rawValue, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 2, timeoutMs)
        let sigs = Signals.take()
        for s in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] where Signals.has(sigs, s) {
            if s == SIGTERM || s == SIGINT { stopping = true }
            kill(worker, s)
        }
        if fds[1].revents != 0 { wake.drain() }
        if fds[0].revents != 0 {
            do {
                switch try channel.receive(from: .worker) {
                case .ready:
                    return .ready  // supervise() calls a second one a fault
                case .log(let level, let text):
                    if level == .error { lastError = text }
                    Log.write(level.syslogPriority, text)
                case let other:
                    // receive() already refuses the helper's own types; kept for new ones.
                    return .misbehaved("unexpected \(other.type) message")
                }
            } catch .channelClosed {
                // The worker is exiting (or says so): collected below, or killed after the grace time.
                hungUpAt = MonotonicClock.nowMs()
            } catch {
                return .misbehaved("\(error)")
            }
        }
        if let status = reap(blocking: false) { return .exited(status) }
        return .nothing
    }

    /// SIGKILL, then the one blocking wait: a killed process is reaped at once.
    private func killAndReap() {
        kill(worker, SIGKILL)
        _ = reap(blocking: true)
    }

    /// The worker's wait status once it has exited.
    private func reap(blocking: Bool) -> Spawn.ChildStatus? {
        do throws(Errno) {
            return try Spawn.wait(worker, block: blocking)
        } catch {
            return error.rawValue == ECHILD ? .exited(0) : nil
        }
    }

    private func exitCode(_ status: Spawn.ChildStatus) -> Int32 {
        switch status {
        case .exited(0):
            Log.notice("worker \(worker) \(status); stopping")
            return 0
        case .exited:
            Log.error("worker \(worker) \(status); stopping")
            return 1
        case .signaled:
            Log.error("worker \(worker) \(status); stopping")
            return 2
        }
    }
}

extension LogLevel {
    package var syslogPriority: Int32 {
        switch self {
        case .error: LOG_ERR
        case .warning: LOG_WARNING
        case .info: LOG_INFO
        case .debug: LOG_DEBUG
        }
    }
}
