/// Why a received datagram was dropped; names as in docs/PROTOCOL.md §6.
/// The daemon counts each; `status` and SIGUSR1 print them.
public enum DropReason: Int, CaseIterable, Sendable {
    case malformed
    case reflected
    case oldSession
    case badMAC
    case unknownSender
    case timeSkew
    case replay
    /// Not a check of its own: a datagram that would need a key derivation
    /// (a new session, from an address other than the peer's) while the
    /// derivation budget is spent; dropped before check 4.
    case rateLimited
    /// Check 1a: a version 1 datagram (an older squtun); logged once a run.
    case oldVersion
    /// Check 1b: another suite than this end's; logged once a run.
    case wrongSuite
    /// Check 1c: Ethernet frames for an end of IP packets, or the reverse;
    /// logged once a run.
    case wrongMode
    /// Check 1d: a key id this receiver does not have (point-to-point:
    /// anything but 0). Counted only: no derivation, no log line.
    case unknownKey

    /// The name used in PROTOCOL.md, logs and `squtun status`.
    public var name: String {
        switch self {
        case .malformed: "malformed"
        case .reflected: "reflected"
        case .oldSession: "old-session"
        case .badMAC: "bad-mac"
        case .unknownSender: "unknown-sender"
        case .timeSkew: "time-skew"
        case .replay: "replay"
        case .rateLimited: "rate-limited"
        case .oldVersion: "old-version"
        case .wrongSuite: "wrong-suite"
        case .wrongMode: "wrong-mode"
        case .unknownKey: "unknown-key"
        }
    }

    public init?(name: String) {
        guard let r = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = r
    }
}
