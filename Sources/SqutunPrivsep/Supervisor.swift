import SqutunSystem
import Glibc
import Shared

/// The helper's loop once the worker runs: it answers the worker's
/// requests from the monitor's table (MonitorTable.swift). It never blocks
/// on the worker: the only blocking wait is the reap right after a SIGKILL.
/// A worker that breaks the channel protocol (a malformed message, or a
/// request the table refuses) is killed at once; one that hangs up but
/// does not exit gets the stop grace time, then SIGKILL. Either way the
/// helper cleans up and exits non-zero.
package struct Supervisor: ~Copyable {
    private let worker: pid_t
    private let channel: Channel
    private let wake: FileDescriptor
    private var monitor: Monitor
    private var provisions: WorkerProvisions
    /// A server's clients: SIGHUP reads its peers directory again instead
    /// of reaching the worker.
    private let server: ServerMonitor?
    /// The worker's last error line: the reason if it dies during startup.
    private var lastError: String?
    private var stopping = false
    /// When the worker closed its end of the channel (monotonic ms).
    private var hungUpAt: UInt64?

    package init(worker: pid_t, channel: consuming Channel, wake: FileDescriptor, provisions: WorkerProvisions) {
        self.worker = worker
        self.channel = channel
        self.wake = wake
        self.provisions = provisions
        server = provisions.server
        monitor = Monitor(table: provisions.server == nil ? Monitor.table : Monitor.serverTable)
    }

    /// The helper's life once the worker runs: its setup served, then (a
    /// server's clients given to it) `upLine` logged, the starting command
    /// told, supervision until it is gone. The exit status.
    package mutating func run(daemon: Daemonize?, upLine: String,
                              clients: [ServerMonitor.Loaded] = []) throws -> Int32 {
        switch waitForReady() {
        case .ready:
            guard sendClients(clients) else { return stop() }
            Log.notice(upLine)
            daemon?.succeed()
            return supervise()
        case .failed(let why):
            throw PrivsepError.workerFailed(why)
        case .killed(let why):
            // As after ready: a worker that breaks the protocol is status 2
            // (a waiting starting command still gets the line, and 1).
            daemon?.fail(why)
            Log.error(why)
            return 2
        }
    }

    /// A server, once its worker is ready: every client of the peers
    /// directory to the worker. False (logged) if the worker could not take them.
    private func sendClients(_ loaded: [ServerMonitor.Loaded]) -> Bool {
        guard let server else { return true }
        do throws(PrivsepError) {
            try server.sendAll(loaded, on: channel)
            return true
        } catch {
            Log.error("cannot give the worker its clients: \(error)")
            return false
        }
    }

    /// How the worker's setup ended.
    package enum Startup: Equatable {
        case ready
        /// It exited, or did not say ready in time: why, one line.
        case failed(String)
        /// It broke the channel protocol and was killed: why, one line.
        case killed(String)
    }

    /// Serves the worker's setup requests until it says ready. Either
    /// way, what the worker did not ask for is released.
    package mutating func waitForReady() -> Startup {
        defer { provisions.release() }
        let deadline = MonotonicClock.nowMs() + UInt64(Helper.readyTimeoutMs)
        while true {
            let now = MonotonicClock.nowMs()
            if now >= deadline {
                killAndReap()
                return .failed("the worker did not start within \(Helper.readyTimeoutMs / 1000) s")
            }
            switch wait(timeoutMs: Int32(deadline - now)) {
            case .ready: return .ready
            case .exited(let status):
                return .failed(lastError ?? "the worker exited during startup (\(status))")
            case .misbehaved(let why):
                killAndReap()
                return .killed("worker \(worker) broke the channel protocol during startup (\(why)): killed it")
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
            case .ready, .nothing: break  // (the table allows one ready, during setup)
            }
            if killAt == nil && !killed {
                if stopping { killAt = MonotonicClock.nowMs() + stopGraceMs }
                if let h = hungUpAt { killAt = h + stopGraceMs }
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

    /// How long the worker has to exit: a server's worker also closes its
    /// client tuns, each a device the kernel takes down (tens of ms each).
    private var stopGraceMs: UInt64 {
        UInt64(Helper.stopGraceMs) + UInt64(server?.tunCount ?? 0) * ServerMonitor.stopGracePerTunMs
    }

    private enum Event { case ready, exited(Spawn.ChildStatus), misbehaved(String), nothing }

    /// One wait: signals (forwarded), worker messages (logged), worker exit.
    private mutating func wait(timeoutMs: Int32) -> Event {
        // After a hang-up the channel is not watched (it would stay readable).
        var fds = [pollfd(fd: hungUpAt == nil ? channel.fd.rawValue : -1, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake.rawValue, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 2, timeoutMs)
        let sigs = Signals.take()
        for s in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] where Signals.has(sigs, s) {
            if s == SIGTERM || s == SIGINT { stopping = true }
            if s == SIGHUP, let server, hungUpAt == nil, monitor.phase == .running {
                do throws(PrivsepError) { try server.rescan(on: channel) } catch {
                    return .misbehaved("\(error)")
                }
                continue
            }
            kill(worker, s)
        }
        if fds[1].revents != 0 { wake.drain() }
        if fds[0].revents != 0 {
            do throws(PrivsepError) {
                let request = try channel.receive(from: .worker)
                switch try monitor.dispatch(request, provisions: &provisions, channel: channel) {
                case .answered: break
                case .ready: return .ready
                case let .log(level, text):
                    if level == .error { lastError = text }
                    Log.write(level.syslogPriority, text)
                case .refused(let why): return .misbehaved("\(why)")
                }
            } catch .channelClosed {
                // The worker is exiting (or says so): collected below, or killed after the grace time.
                hungUpAt = MonotonicClock.nowMs()
            } catch .channelIO(operation: "sendmsg", let errno) where errno.rawValue == EPIPE {
                // It hung up before its answer: the same as a hang-up.
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
        server?.workerGone()
    }

    /// Ends a worker that could not be given what it needs: killed, status 1.
    package func stop() -> Int32 {
        killAndReap()
        return 1
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
        // A server's client tuns went with the worker: their hooks' `down`.
        server?.workerGone()
        let code: Int32
        switch status {
        case .exited(0): code = 0
        case .exited: code = 1
        case .signaled: code = 2
        }
        Log.write(code == 0 ? LOG_NOTICE : LOG_ERR, "worker \(worker) \(status); stopping")
        return code
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
