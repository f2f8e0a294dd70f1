import Shared

/// A log line for the operator when datagrams from the peer's address keep
/// failing authentication (`bad-mac`) and none from the peer passes: almost
/// always the two ends' keys differ. The counter says how many; this says
/// what to check. While the peer's datagrams do authenticate (one in the
/// last minute), bad-mac drops are forgeries or damage, not a key mismatch,
/// and nothing is said. At most one line a minute whatever a flood sends
/// (an attacker who spoofs the peer's address can make it appear, not make
/// it fill the log), and nothing when the counter has not moved since the
/// last line. Reads one counter per loop round; reads the clock and builds
/// a string only when it moved.
struct AuthFailureHint {
    static let intervalMs: UInt64 = 60_000
    static let text = "datagrams from the peer's address fail authentication: the two ends' keys differ "
        + "(keypair: check --peer-key is the peer's .pub; PSK: the key files differ)"

    private var seen: UInt64 = 0
    private var lastLineMs: UInt64?

    /// The line to log now, if any: `badMAC` is the current count,
    /// `lastAuthenticatedMs` when a datagram of the peer last passed every
    /// check (nil: never), `nowMs` monotonic (read only when the count moved).
    mutating func check(badMAC: UInt64, lastAuthenticatedMs: UInt64?, nowMs: @autoclosure () -> UInt64) -> String? {
        guard badMAC != seen else { return nil }
        let nowMs = nowMs()
        if let good = lastAuthenticatedMs, nowMs &- good < Self.intervalMs {
            seen = badMAC
            return nil
        }
        if let last = lastLineMs, nowMs &- last < Self.intervalMs { return nil }
        let new = badMAC &- seen
        seen = badMAC
        lastLineMs = nowMs
        return Self.text + " (\(new) more dropped as bad-mac)"
    }
}
