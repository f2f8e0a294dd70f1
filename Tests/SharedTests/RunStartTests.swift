import Shared
import XCTest

/// Session identifiers and the start time (PROTOCOL.md §2, §6).
final class RunStartTests: XCTestCase {
    /// Two runs whose clocks read exactly the same (no RTC, a restored
    /// snapshot) pick different sessions; the high bits are the clock's.
    func testSameClockReadingGivesDifferentSessions() throws {
        let frozen: UInt64 = 1_795_000_000_123_456_789
        var seen = Set<UInt64>()
        for _ in 0..<32 {
            let s = try RunStart.now(clockNs: { frozen }).session
            XCTAssertEqual(s >> 24, frozen >> 24, "the clock's tick in the high bits")
            seen.insert(s)
        }
        XCTAssertGreaterThan(seen.count, 30, "24 random bits: 32 runs on one frozen clock all but never collide")
    }

    /// Runs started one right after the other on this machine's clock get
    /// strictly increasing sessions (restarts stay ordered), each within a
    /// tick of the clock.
    func testSuccessiveStartsAreOrdered() throws {
        var last: UInt64 = 0
        for _ in 0..<12 {
            let before = WallClock.nowNs()
            let s = try RunStart.now()
            let after = WallClock.nowNs()
            XCTAssertGreaterThan(s.session, last)
            XCTAssertGreaterThan(s.session >> 24, before >> 24, "waited for the next tick")
            XCTAssertLessThanOrEqual(s.session >> 24, after >> 24)
            XCTAssertTrue((before / 1_000_000...after / 1_000_000).contains(s.wallMs))
            last = s.session
        }
    }

    /// T_start follows a step of the wall clock by the time elapsed on the monotonic clock.
    func testStartOnWallClockFollowsSteps() {
        let s = RunStart(session: 1, wallMs: 1_795_000_000_000, monotonicMs: 10_000)
        XCTAssertEqual(s.startOnWallClock(wallNowMs: 1_795_000_005_000, monotonicNowMs: 15_000), 1_795_000_000_000)
        XCTAssertEqual(s.startOnWallClock(wallNowMs: 1_794_999_000_000, monotonicNowMs: 20_000), 1_794_998_990_000)
        XCTAssertEqual(s.startOnWallClock(wallNowMs: 5, monotonicNowMs: 20_000), 0)
    }
}
