/// A token bucket on a monotonic millisecond clock the caller passes in:
/// `take` succeeds at most `burst` times in a row and then `perSecond`
/// times a second on average. Integer arithmetic in thousandths of a
/// token; no allocation, no clock of its own (so tests drive time).
/// Starts full.
public struct TokenBucket: Sendable {
    public let perSecond: UInt64
    public let burst: UInt64
    /// In thousandths of a token; at most `burst * 1000`.
    private var milli: UInt64
    private var lastMs: UInt64?

    /// `perSecond` >= 1, `burst` >= 1.
    public init(perSecond: UInt64, burst: UInt64) {
        self.perSecond = max(perSecond, 1)
        self.burst = max(burst, 1)
        milli = self.burst * 1000
    }

    /// Takes one token at time `nowMs` if there is one. A clock that goes
    /// back adds nothing (and does not take tokens away).
    public mutating func take(nowMs: UInt64) -> Bool {
        let capacity = burst * 1000
        if let last = lastMs, nowMs > last {
            // 1 ms adds `perSecond` thousandths; more than `capacity / perSecond + 1` ms fills it.
            let elapsed = min(nowMs - last, capacity / perSecond + 1)
            milli = min(capacity, milli + elapsed * perSecond)
        }
        if lastMs == nil || nowMs > lastMs! { lastMs = nowMs }
        guard milli >= 1000 else { return false }
        milli -= 1000
        return true
    }
}
