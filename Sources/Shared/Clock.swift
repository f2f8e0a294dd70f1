import Glibc
import CShim

/// Wall-clock readings for the protocol: timestamps (ms) and session ids.
public enum WallClock {
    /// Milliseconds since the Unix epoch (CLOCK_REALTIME).
    @inlinable
    public static func nowMs() -> UInt64 { clockMs(CLOCK_REALTIME) }

    /// Nanoseconds since the Unix epoch (CLOCK_REALTIME).
    public static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// CLOCK_MONOTONIC in milliseconds: intervals, and the start time carried
/// across steps of the wall clock.
public enum MonotonicClock {
    @inlinable
    public static func nowMs() -> UInt64 { clockMs(CLOCK_MONOTONIC) }
}

/// clock_gettime in milliseconds.
@inlinable
func clockMs(_ clock: clockid_t) -> UInt64 {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return UInt64(ts.tv_sec) &* 1000 &+ UInt64(ts.tv_nsec) / 1_000_000
}

/// A run's session identifier and start time (PROTOCOL.md §2 and §6).
///
/// The session identifier is the wall clock in ticks of 2^24 ns (16.8 ms)
/// in its high 40 bits and 24 random bits in its low ones: on the scale of
/// nanoseconds since the epoch, so restarts stay ordered, but two runs
/// whose clocks read the same (no RTC and no NTP yet, a restored VM
/// snapshot) still pick different identifiers, and so different keys.
/// Before it reads the clock for good it waits for the next tick: a run
/// started while an earlier one is still in the tick that earlier run
/// picked cannot pick that tick again, so on a clock that does not step
/// back every later start has a greater identifier.
public struct RunStart: Sendable, Equatable {
    /// Low bits of a session identifier that are random.
    public static let randomBits = 24
    public static let tickNs: UInt64 = 1 << UInt64(randomBits)

    public let session: UInt64
    /// Wall clock (ms since the epoch) when the session was picked: T_start.
    public let wallMs: UInt64
    /// CLOCK_MONOTONIC (ms) at the same moment.
    public let monotonicMs: UInt64

    public init(session: UInt64, wallMs: UInt64, monotonicMs: UInt64) {
        self.session = session
        self.wallMs = wallMs
        self.monotonicMs = monotonicMs
    }

    /// Picks this run's session. `clockNs` and `random` are seams for tests.
    public static func now(clockNs: () -> UInt64 = WallClock.nowNs,
                           random: () throws -> UInt64 = RunStart.randomWord) throws -> RunStart {
        let first = clockNs() >> UInt64(randomBits)
        var reading = clockNs()
        // At most a few ticks: a clock that does not move (or moves back) is
        // taken as it is rather than waited for.
        for _ in 0..<3 where reading >> UInt64(randomBits) == first {
            let into = reading & (tickNs - 1)
            var ts = timespec(tv_sec: 0, tv_nsec: Int(tickNs - into) + 1000), left = timespec()
            while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
            reading = clockNs()
        }
        let low = try random() & (tickNs - 1)
        let session = (reading >> UInt64(randomBits)) << UInt64(randomBits) | low
        return RunStart(session: session, wallMs: reading / 1_000_000, monotonicMs: MonotonicClock.nowMs())
    }

    /// T_start as the wall clock reads now (PROTOCOL.md §6, check 6): the
    /// start moved by whatever step the wall clock made since, so that a
    /// clock stepped back (or forward) by NTP neither refuses genuine
    /// datagrams nor opens a window for old ones.
    @inlinable
    public func startOnWallClock(wallNowMs: UInt64, monotonicNowMs: UInt64) -> UInt64 {
        let elapsed = monotonicNowMs &- monotonicMs
        return wallNowMs >= elapsed ? wallNowMs - elapsed : 0
    }

    /// 64 bits from getrandom(2).
    public static func randomWord() throws -> UInt64 {
        var word: UInt64 = 0
        guard squtun_getrandom(&word, 8) == 0 else { throw SharedError.randomFailed(reason: SharedError.errnoText()) }
        return word
    }
}
