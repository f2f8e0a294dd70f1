import Glibc

/// Wall-clock readings for the protocol: timestamps (ms) and session ids (ns).
public enum WallClock {
    /// Milliseconds since the Unix epoch (CLOCK_REALTIME).
    @inlinable
    public static func nowMs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1000 &+ UInt64(ts.tv_nsec) / 1_000_000
    }

    /// Nanoseconds since the Unix epoch: a new session identifier (PROTOCOL.md §2).
    public static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
