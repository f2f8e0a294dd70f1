import XCTest
@testable import Shared

/// The anti-replay window (PROTOCOL.md §7), case by case. Each case starts
/// from an empty window, marks `marked` in order (each must pass `check`
/// first), then asks `check` about `probe`.
final class ReplayWindowTests: XCTestCase {
    let W = Wire.replayWindow  // 1984
    let max = UInt64.max

    func run(_ marked: [UInt64], _ probe: UInt64) -> Bool {
        var w = ReplayWindow()
        for c in marked {
            XCTAssertTrue(w.check(c), "setup counter \(c) refused")
            w.mark(c)
        }
        return w.check(probe)
    }

    func testNumberedCases() {
        let cases: [(n: Int, marked: [UInt64], probe: UInt64, accept: Bool, what: String)] = [
            (1, [], 0, true, "empty window accepts 0"),
            (2, [], 12345, true, "empty window accepts anything"),
            (3, [0], 0, false, "a replay of the first counter"),
            (4, [0], 1, true, "the next counter"),
            (5, [5], 3, true, "older than the highest but unseen"),
            (6, [5, 3], 3, false, "older, seen"),
            (7, [0, 1, 2, 3], 2, false, "in-order stream, replay in the middle"),
            (8, [3000], 3000 - W + 1, true, "oldest counter still inside the window"),
            (9, [100 + W], 100, false, "exactly the window size behind: too old"),
            (10, [2 * W], W, false, "far behind: too old"),
            (11, [10, 10 + 63], 10, false, "same 64-bit word, seen"),
            (12, [10, 10 + 64], 10, false, "next word, the old word's bit survives"),
            (13, [10, 10 + 64], 11, true, "next word, unseen neighbour"),
            (14, [0, 5000], 5000 - 1, true, "large jump: just behind the new highest"),
            (15, [0, 5000], 0, false, "large jump: the old counter is now too old"),
            (16, [3000, 3000 + 64 * 32], 3000 + 64 * 32 - 1, true,
             "jump of exactly the ring size clears every word"),
            (17, [64 * 31], 64 * 31 - 1, true, "ring wrap-around: word 31 then word 30"),
            (18, [1, 64 * 32 + 1], 1, false, "ring wrap-around: same ring slot, old lap"),
            (19, [1, 64 * 32 + 1], 64 * 32 + 2, true, "ring wrap-around: new lap's next counter"),
            (20, [max - 1], max, true, "top of the counter space"),
            (21, [max - 1, max], max, false, "top of the counter space, replayed"),
            (22, [max], max - W, false, "behind the top by the window size"),
            (23, [max], max - W + 1, true, "behind the top, inside the window"),
        ]
        for c in cases {
            XCTAssertEqual(run(c.marked, c.probe), c.accept, "case \(c.n): \(c.what)")
        }
    }

    /// Every counter of a long stream in a shuffled order inside the window
    /// is accepted exactly once.
    func testShuffledStreamAcceptedOnce() {
        var w = ReplayWindow()
        var rng = SystemRandomNumberGenerator()
        var next: UInt64 = 0
        var accepted = 0
        for _ in 0..<50 {
            // A burst of 500 counters, delivered shuffled (well inside 1984).
            let burst = (next..<(next + 500)).shuffled(using: &rng)
            for c in burst {
                XCTAssertTrue(w.check(c), "fresh \(c)")
                w.mark(c)
                accepted += 1
            }
            for c in burst.prefix(50) { XCTAssertFalse(w.check(c), "replayed \(c)") }
            next += 500
        }
        XCTAssertEqual(accepted, 25_000)
    }

    /// Checking does not mark: a packet that fails a later check can come again.
    func testCheckDoesNotMark() {
        var w = ReplayWindow()
        w.mark(10)
        XCTAssertTrue(w.check(11))
        XCTAssertTrue(w.check(11))
        XCTAssertTrue(w.check(9))
        XCTAssertTrue(w.check(9))
    }

    func testResetForgetsEverything() {
        var w = ReplayWindow()
        w.mark(1_000_000)
        XCTAssertFalse(w.check(1_000_000))
        w.reset()
        XCTAssertTrue(w.check(1_000_000))
        XCTAssertTrue(w.check(0))
        XCTAssertFalse(w.seenAny)
    }
}
