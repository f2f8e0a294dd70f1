import Shared
import XCTest

final class TokenBucketTests: XCTestCase {
    func takes(_ b: inout TokenBucket, at ms: UInt64, _ n: Int) -> Int {
        (0..<n).filter { _ in b.take(nowMs: ms) }.count
    }

    func testBurstThenRate() {
        var b = TokenBucket(perSecond: 1000, burst: 50)
        XCTAssertEqual(takes(&b, at: 5000, 80), 50)
        XCTAssertEqual(takes(&b, at: 5000, 10), 0)
        XCTAssertEqual(takes(&b, at: 5001, 10), 1)
        XCTAssertEqual(takes(&b, at: 5011, 20), 10)
        // Long idle: full again, never more than the burst.
        XCTAssertEqual(takes(&b, at: 999_999_999, 200), 50)
    }

    func testSlowRatesAccumulateFractions() {
        // Burst 2, so the cap never clips a fraction on the way to a token.
        var b = TokenBucket(perSecond: 3, burst: 2)
        XCTAssertEqual(takes(&b, at: 0, 3), 2)
        var got = 0
        for ms in stride(from: UInt64(1), through: 10_000, by: 1) where b.take(nowMs: ms) { got += 1 }
        XCTAssertEqual(got, 30)
    }

    func testClockGoingBackAddsNothing() {
        var b = TokenBucket(perSecond: 1000, burst: 2)
        XCTAssertEqual(takes(&b, at: 100, 5), 2)
        XCTAssertEqual(takes(&b, at: 50, 5), 0)
        XCTAssertEqual(takes(&b, at: 100, 5), 0)
        XCTAssertEqual(takes(&b, at: 101, 5), 1)
    }

    func testHugeGapsDoNotOverflow() {
        var b = TokenBucket(perSecond: .max / 2, burst: 3)
        XCTAssertEqual(takes(&b, at: 0, 5), 3)
        XCTAssertEqual(takes(&b, at: .max, 5), 3)
    }
}
