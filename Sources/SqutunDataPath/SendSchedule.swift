import Shared
import SqutunSystem
/// When the data path sends on its own (keepalives) and tries UDP GSO
/// again, and whether sending to the peer works. Plain values: the data
/// path feeds them the clock and the outcome of each send; nothing here
/// makes a system call, so the rules are testable on their own.

/// Keepalives are due `intervalMs` after the last datagram that went out.
/// A keepalive that fails (no route, link down) is retried after the same
/// interval, counted from the attempt, then after 2, 4 and 8 intervals
/// (at most 60 s, or one interval if that is longer): a lasting send error
/// costs a few system calls a minute, never a busy loop. The first
/// datagram that goes out again ends the backoff.
public struct KeepaliveSchedule {
    public static let maxBackoffMs: UInt64 = 60_000
    public let intervalMs: UInt64
    /// CLOCK_MONOTONIC ms at which the next keepalive is due; 0: at once.
    public private(set) var dueMs: UInt64 = 0
    /// Keepalives failed in a row.
    public private(set) var failures = 0

    public init(intervalMs: UInt64) { self.intervalMs = intervalMs }

    /// Something went out: the next keepalive one interval from now.
    @inline(__always)
    public mutating func sent(nowMs: UInt64) {
        dueMs = nowMs &+ intervalMs
        failures = 0
    }

    /// A keepalive could not be sent: the next try, backed off.
    public mutating func keepaliveFailed(nowMs: UInt64) {
        failures += 1
        let backoff = intervalMs << UInt64(min(failures - 1, 3))
        dueMs = nowMs &+ min(backoff, max(intervalMs, Self.maxBackoffMs))
    }

    /// The peer changed: its first keepalive no later than one interval away.
    public mutating func peerChanged(nowMs: UInt64) {
        failures = 0
        dueMs = min(dueMs, nowMs &+ intervalMs)
    }

    public func isDue(nowMs: UInt64) -> Bool { intervalMs > 0 && nowMs >= dueMs }

    /// The poll timeout until the next keepalive (capped at a minute), or
    /// -1 (none) without keepalives.
    public func pollTimeout(nowMs: UInt64) -> Int32 {
        guard intervalMs > 0 else { return -1 }
        return dueMs <= nowMs ? 0 : Int32(min(dueMs - nowMs, 60_000))
    }
}

/// UDP GSO is used until the kernel refuses it (see
/// `UDPSocket.refusesGSO`), then tried again after 1 s, 2 s, 4 s … at
/// most a minute apart, and used again as soon as it works: a refusal
/// caused from outside (an ICMP "fragmentation needed" lowering the path
/// MTU below a segment) costs speed for a while, not for good.
public struct GSOSchedule {
    public static let firstRetryMs: UInt64 = 1_000
    public static let maxRetryMs: UInt64 = 60_000
    /// Until then, datagrams go one by one.
    public private(set) var offUntilMs: UInt64 = 0
    public private(set) var retryMs: UInt64 = firstRetryMs

    @inline(__always)
    public func allowed(nowMs: UInt64) -> Bool { nowMs >= offUntilMs }

    /// What one batch send taught: a refusal switches GSO off for a while,
    /// a GSO send that went through ends the backoff.
    @inline(__always)
    public mutating func update(_ result: BatchSend, nowMs: UInt64) {
        if result.gsoRefused {
            offUntilMs = nowMs &+ retryMs
            retryMs = min(retryMs * 2, Self.maxRetryMs)
        } else if result.gsoSends > 0 {
            retryMs = Self.firstRetryMs
        }
    }
}

/// Whether sending to the peer works, so that a lasting failure is logged
/// once when it starts and once when it ends, not once per datagram (the
/// datagrams are still counted, as send-errors). A full socket buffer is
/// not a failure of the path: it is counted, never logged.
public struct SendHealth {
    /// The error sending fails with, nil while it works.
    public private(set) var failing: Errno?
    /// Datagrams not sent since it started failing.
    public private(set) var lost: UInt64 = 0

    public enum Change: Equatable {
        case none
        case startedFailing(Errno)
        /// Works again after `lost` datagrams could not be sent.
        case recovered(lost: UInt64)
    }

    /// The outcome of one send of `attempted` datagrams.
    @inline(__always)
    public mutating func record(sent: Int, attempted: Int, failure: Errno?) -> Change {
        if let failure, !failure.isBufferFull {
            lost &+= UInt64(attempted - sent)
            if failing == nil {
                failing = failure
                return .startedFailing(failure)
            }
            return .none
        }
        guard failing != nil, sent > 0 else { return .none }
        failing = nil
        defer { lost = 0 }
        return .recovered(lost: lost)
    }
}

/// A log line about something that can repeat per packet: the first one
/// at once, then at most one per `intervalMs`, telling how many went unsaid.
public struct LogLimit {
    public let intervalMs: UInt64
    private var nextMs: UInt64 = 0
    private var started = false
    private var suppressed: UInt64 = 0

    public init(intervalMs: UInt64) { self.intervalMs = intervalMs }

    /// Nil: stay quiet (counted). Else log now, mentioning the returned
    /// number of occurrences since the last line.
    public mutating func allow(nowMs: UInt64) -> UInt64? {
        if started && nowMs < nextMs {
            suppressed &+= 1
            return nil
        }
        started = true
        nextMs = nowMs &+ intervalMs
        defer { suppressed = 0 }
        return suppressed
    }
}
