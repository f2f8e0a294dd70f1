import Shared
import SqutunSystem
import Glibc

/// Where the running daemon's log lines go: stderr in the foreground (-f),
/// syslog when daemonized, and, in the worker, over the channel to the
/// helper (the chrooted worker cannot reach /dev/log; the helper logs for it).
///
/// Every line is sanitized (`Sanitize.line`): no control or bidi character
/// reaches a terminal or the journal as it is.
///
/// In the processes that run the data path (the worker, the single
/// process) logging must never stall packets: lines go out without
/// blocking (a full channel or syslog socket loses the line), are rate
/// limited (`LogLimiter`), and every lost line is counted
/// (`droppedLines`, the status line `log-lines-dropped`) and reported once
/// lines get through again.
package enum Log {
    package enum Sink {
        case stderr
        /// glibc syslog(3): the root helper (it may reconnect after a
        /// syslog restart: it has no seccomp filter).
        case syslog
        /// A datagram socket connected to /dev/log before the seccomp
        /// filter (the single process in daemon mode: it may not reconnect).
        case syslogSocket(SyslogSocket?)
        case channel(Channel.LogPort)
    }

    package nonisolated(unsafe) static var sink: Sink = .stderr
    /// Prefix of stderr lines.
    package nonisolated(unsafe) static var tag = "squtun"
    /// Rate limiting, for the processes that run the data path.
    package nonisolated(unsafe) static var limiter: LogLimiter?
    /// Lines lost since start: over the rate limit, or the helper (or
    /// syslog) not taking them.
    package nonisolated(unsafe) static private(set) var droppedLines: UInt64 = 0
    /// Lost lines not yet reported in a log line, and when the last such
    /// report went out (one every `reportIntervalMs` at most).
    nonisolated(unsafe) private static var unreported: UInt64 = 0
    nonisolated(unsafe) private static var lastReportMs: UInt64?
    package static let reportIntervalMs: UInt64 = 5_000

    package static func useSyslog(ident: String) {
        // openlog keeps the pointer: give it storage that lives forever.
        let p = strdup(ident)
        openlog(p, LOG_PID | LOG_NDELAY, LOG_DAEMON)
        sink = .syslog
    }

    /// For a data-path process: non-blocking sends, the rate limit, and
    /// glibc's syslog replaced by a socket opened now (before seccomp).
    package static func forDataPath(ident: String = "squtun") {
        limiter = LogLimiter()
        if case .syslog = sink {
            closelog()
            sink = .syslogSocket(SyslogSocket.open(ident: ident))
        }
    }

    package static func write(_ level: Int32, _ message: String) {
        let line = Sanitize.line(message)
        guard var limiter else {
            if !emit(level, line) {
                droppedLines &+= 1
                unreported &+= 1
            }
            return
        }
        let now = MonotonicClock.nowMs()
        let verdict = limiter.admit(line, nowMs: now)
        Log.limiter = limiter
        switch verdict {
        case .repeated:
            break
        case .drop(let repeats):
            droppedLines &+= 1 &+ repeats
            unreported &+= 1 &+ repeats
        case .send(let repeated):
            if unreported > 0 && lastReportMs.map({ now &- $0 >= reportIntervalMs }) ?? true {
                let n = unreported
                if emit(LOG_WARNING, "\(n) log line\(n == 1 ? "" : "s") lost (rate limit, or the log reader not keeping up)") {
                    unreported -= n
                    lastReportMs = now
                }
            }
            if repeated > 0 { _ = emit(LOG_NOTICE, "(the previous line repeated \(repeated) more time\(repeated == 1 ? "" : "s"))") }
            if !emit(level, line) {
                droppedLines &+= 1
                unreported &+= 1
            }
        }
    }

    /// One line to the sink; false if it was lost.
    @discardableResult
    private static func emit(_ level: Int32, _ line: String) -> Bool {
        switch sink {
        case .stderr:
            let text = "\(tag): \(line)\n"
            return text.withCString { Glibc.write(2, $0, strlen($0)) } >= 0
        case .syslog:
            line.withCString { vsyslogString(level, $0) }
            return true
        case .syslogSocket(let socket):
            return socket?.send(level: level, line) ?? false
        case .channel(let ch):
            // Never blocks: a helper that does not read loses lines, not packets.
            // (A helper that is gone: the loop notices the hang-up.)
            return (try? ch.sendLog(level: level, text: line)) != nil
        }
    }

    package static func error(_ m: String) { write(LOG_ERR, m) }
    package static func warning(_ m: String) { write(LOG_WARNING, m) }
    package static func notice(_ m: String) { write(LOG_NOTICE, m) }
    package static func info(_ m: String) { write(LOG_INFO, m) }
}

/// The data path's log rate limit. A line identical to the one before it,
/// within `repeatWindowMs` of the first of the run, is only counted; the
/// count goes out with the next line that does ("the previous line
/// repeated N more times"). Other lines take a token from a bucket of
/// `burst` refilled at `perSecond` a second; without one they are lost.
/// Enough for a few SIGUSR1 status dumps in a row; a flood of lines
/// costs at most that rate.
package struct LogLimiter {
    package static let burst: UInt64 = 100
    package static let perSecond: UInt64 = 10
    package static let repeatWindowMs: UInt64 = 10_000

    package enum Verdict: Equatable {
        /// Send it; first say that the previous line came `repeated` more times.
        case send(repeated: UInt64)
        /// The previous line again: counted here, not sent.
        case repeated
        /// Over the rate: lost, with `repeats` counted repeats of the previous line.
        case drop(repeats: UInt64)
    }

    private var bucket = TokenBucket(perSecond: LogLimiter.perSecond, burst: LogLimiter.burst)
    private var lastLine: String?
    private var runStartMs: UInt64 = 0
    private var repeats: UInt64 = 0

    package mutating func admit(_ line: String, nowMs: UInt64) -> Verdict {
        if line == lastLine && nowMs &- runStartMs < Self.repeatWindowMs {
            repeats &+= 1
            return .repeated
        }
        let pending = repeats
        repeats = 0
        lastLine = line
        runStartMs = nowMs
        guard bucket.take(nowMs: nowMs) else { return .drop(repeats: pending) }
        return .send(repeated: pending)
    }
}

/// syslog(level, "%s", text): never pass a message as the format.
private func vsyslogString(_ level: Int32, _ text: UnsafePointer<CChar>) {
    withVaList([text]) { vsyslog(level, "%s", $0) }
}
