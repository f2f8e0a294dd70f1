import XCTest
@testable import SqutunDataPath

/// The bad-mac hint: said when the counter moves and nothing from the peer
/// authenticates, at most once a minute, never when the counter stands still.
final class AuthFailureHintTests: XCTestCase {
    func testOncePerMinuteWhileTheCounterMoves() {
        var hint = AuthFailureHint()
        XCTAssertNil(hint.check(badMAC: 0, lastAuthenticatedMs: nil, nowMs: 1_000), "no drops, no line")
        let first = hint.check(badMAC: 3, lastAuthenticatedMs: nil, nowMs: 1_000)
        XCTAssertEqual(first, AuthFailureHint.text + " (3 more dropped as bad-mac)")
        XCTAssertTrue(first?.contains("check --peer-key is the peer's .pub") == true)
        // A flood within the minute: silent, however much it sends.
        for n in 4..<10_000 { XCTAssertNil(hint.check(badMAC: UInt64(n), lastAuthenticatedMs: nil, nowMs: 1_000 + UInt64(n))) }
        XCTAssertNil(hint.check(badMAC: 20_000, lastAuthenticatedMs: nil, nowMs: 60_999))
        XCTAssertEqual(hint.check(badMAC: 20_000, lastAuthenticatedMs: nil, nowMs: 61_000),
                       AuthFailureHint.text + " (19997 more dropped as bad-mac)")
        // The counter stands still: nothing, even minutes later.
        XCTAssertNil(hint.check(badMAC: 20_000, lastAuthenticatedMs: nil, nowMs: 600_000))
        XCTAssertNotNil(hint.check(badMAC: 20_001, lastAuthenticatedMs: nil, nowMs: 600_000))
    }

    /// The peer's datagrams authenticate: the keys match, and bad-mac drops
    /// (forgeries from its address) are no reason to say they differ.
    func testSilentWhileThePeerAuthenticates() {
        var hint = AuthFailureHint()
        XCTAssertNil(hint.check(badMAC: 500, lastAuthenticatedMs: 100_000, nowMs: 100_500))
        XCTAssertNil(hint.check(badMAC: 900, lastAuthenticatedMs: 100_000, nowMs: 159_999))
        // A minute without one: now the keys may well differ (the peer's changed).
        XCTAssertEqual(hint.check(badMAC: 901, lastAuthenticatedMs: 100_000, nowMs: 160_000),
                       AuthFailureHint.text + " (1 more dropped as bad-mac)")
    }
}
