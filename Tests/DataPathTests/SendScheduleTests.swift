import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
#if canImport(Glibc)
import Glibc
#endif

/// The rules of SendSchedule.swift (the e2e test t_sendfail.sh checks the
/// daemon that follows them: CPU time during a link outage, the log lines).
final class SendScheduleTests: XCTestCase {
    func testKeepaliveIsScheduledFromTheAttemptAndBacksOff() {
        var k = KeepaliveSchedule(intervalMs: 1000)
        XCTAssertTrue(k.isDue(nowMs: 0), "once at start")
        XCTAssertEqual(k.pollTimeout(nowMs: 0), 0)
        // Failures: retried 1, 2, 4, 8, 8 … intervals after each attempt, never at once.
        var now: UInt64 = 0
        var gaps: [UInt64] = []
        for _ in 0..<6 {
            k.keepaliveFailed(nowMs: now)
            XCTAssertFalse(k.isDue(nowMs: now))
            XCTAssertGreaterThan(k.pollTimeout(nowMs: now), 0, "a failed send never makes poll return at once")
            gaps.append(k.dueMs - now)
            now = k.dueMs
        }
        XCTAssertEqual(gaps, [1000, 2000, 4000, 8000, 8000, 8000])
        // Something went out: back to one interval.
        k.sent(nowMs: now)
        XCTAssertEqual(k.dueMs, now + 1000)
        XCTAssertEqual(k.failures, 0)
        // A long interval is not backed off past itself, a short one not past a minute.
        var long = KeepaliveSchedule(intervalMs: 90_000)
        long.keepaliveFailed(nowMs: 0)
        long.keepaliveFailed(nowMs: 0)
        XCTAssertEqual(long.dueMs, 90_000)
        var mid = KeepaliveSchedule(intervalMs: 25_000)
        for _ in 0..<4 { mid.keepaliveFailed(nowMs: 0) }
        XCTAssertEqual(mid.dueMs, 60_000)
        // A new peer hears from us within one interval.
        mid.peerChanged(nowMs: 5)
        XCTAssertEqual(mid.dueMs, 25_005)
        XCTAssertEqual(mid.failures, 0)
        // No keepalives: never due, poll waits for ever.
        let off = KeepaliveSchedule(intervalMs: 0)
        XCTAssertFalse(off.isDue(nowMs: 123))
        XCTAssertEqual(off.pollTimeout(nowMs: 123), -1)
    }

    func testSendHealthChangesOncePerState() {
        var h = SendHealth()
        XCTAssertEqual(h.record(sent: 4, attempted: 4, failure: nil), .none)
        XCTAssertEqual(h.record(sent: 1, attempted: 4, failure: Errno(ENOBUFS)), .none, "a full buffer is not a path failure")
        XCTAssertEqual(h.record(sent: 0, attempted: 3, failure: Errno(ENETUNREACH)), .startedFailing(Errno(ENETUNREACH)))
        for _ in 0..<1000 {
            XCTAssertEqual(h.record(sent: 0, attempted: 2, failure: Errno(ENETUNREACH)), .none, "said once, not per packet")
        }
        XCTAssertEqual(h.record(sent: 0, attempted: 1, failure: Errno.wouldBlock), .none, "nothing went: still failing")
        XCTAssertEqual(h.record(sent: 1, attempted: 1, failure: nil), .recovered(lost: 2003))
        XCTAssertNil(h.failing)
        XCTAssertEqual(h.record(sent: 1, attempted: 1, failure: nil), .none)
        // Partly sent, then a path error: failing.
        XCTAssertEqual(h.record(sent: 2, attempted: 5, failure: Errno(EHOSTUNREACH)), .startedFailing(Errno(EHOSTUNREACH)))
        XCTAssertEqual(h.record(sent: 3, attempted: 5, failure: Errno(ENOBUFS)), .recovered(lost: 3))
    }

    func testLogLimitSaysTheFirstAndThenOncePerInterval() {
        var l = LogLimit(intervalMs: 60_000)
        XCTAssertEqual(l.allow(nowMs: 5), 0)
        for t in stride(from: UInt64(6), to: 60_005, by: 1000) { XCTAssertNil(l.allow(nowMs: t)) }
        XCTAssertEqual(l.allow(nowMs: 60_005), 60, "the next line tells how many went unsaid")
        XCTAssertNil(l.allow(nowMs: 60_006))
        XCTAssertEqual(l.allow(nowMs: 200_000), 1)
    }
}
