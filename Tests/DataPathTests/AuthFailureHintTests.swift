import XCTest
@testable import SqutunDataPath

/// The bad-mac hint: said when the counter moves, at most once a minute,
/// never when it stands still.
final class AuthFailureHintTests: XCTestCase {
    func testOncePerMinuteWhileTheCounterMoves() {
        var hint = AuthFailureHint()
        XCTAssertNil(hint.check(badMAC: 0, nowMs: 1_000), "no drops, no line")
        let first = hint.check(badMAC: 3, nowMs: 1_000)
        XCTAssertEqual(first, AuthFailureHint.text + " (3 more dropped as bad-mac)")
        XCTAssertTrue(first?.contains("check --peer-key is the peer's .pub") == true)
        // A flood within the minute: silent, however much it sends.
        for n in 4..<10_000 { XCTAssertNil(hint.check(badMAC: UInt64(n), nowMs: 1_000 + UInt64(n))) }
        XCTAssertNil(hint.check(badMAC: 20_000, nowMs: 60_999))
        XCTAssertEqual(hint.check(badMAC: 20_000, nowMs: 61_000), AuthFailureHint.text + " (19997 more dropped as bad-mac)")
        // The counter stands still: nothing, even minutes later.
        XCTAssertNil(hint.check(badMAC: 20_000, nowMs: 600_000))
        XCTAssertNotNil(hint.check(badMAC: 20_001, nowMs: 600_000))
    }
}
