import Shared

// The receiver's checks of PROTOCOL.md §6 in their documented order, in
// place in the caller's buffer, allocating nothing per datagram.

/// What became of a received datagram.
public enum OpenOutcome: Equatable, Sendable {
    /// An authenticated IP packet (in TAP mode an Ethernet frame) at `packet[payloadStart ..< +length]` (the
    /// suite's `payloadStart`).
    case data(length: Int)
    case keepalive
    case drop(DropReason)
}

/// The derivation budget's defaults (see `SuiteOpener`): a flood of forged
/// new sessions from addresses other than the peer's costs at most
/// `perSecond` key derivations a second, `burst` at once (PROTOCOL.md §6).
public enum DerivationBudget {
    public static let perSecond: UInt64 = 20_000
    public static let burst: UInt64 = 2_000
}

/// The tokens for key derivations of sessions an opener has not seen, from
/// addresses other than its peer's. An opener makes its own, or is given
/// one that others share: a server gives all its clients' openers one, so
/// that forgeries spread over many clients' key ids cost the server no
/// more derivations than forgeries for one.
public final class DerivationAllowance {
    private var bucket: TokenBucket

    public init(perSecond: UInt64 = DerivationBudget.perSecond, burst: UInt64 = DerivationBudget.burst) {
        bucket = TokenBucket(perSecond: perSecond, burst: burst)
    }

    @inline(__always)
    public func take(nowMs: UInt64) -> Bool { bucket.take(nowMs: nowMs) }
}

/// The receiving side of one peer (PROTOCOL.md §6 and §7), generic over the
/// cipher suite and the source of session keys. With a `SessionKeyDeriver`
/// the per-packet entry goes through the cipher's `open(_:with:...)` (see
/// `SuiteCipher`), so this module compiles the checks for each suite, with the suite's figures as
/// constants and its stored state private: the data path calls plain,
/// specialised code (a generic entry called from another module would be
/// unspecialised, and inlining it there costs runtime exclusivity checks
/// on every state access).
public final class SuiteOpener<Cipher: SuiteCipher, Keys: SessionKeySource> {
    /// The layout of the datagrams it opens.
    public typealias Suite = Cipher.Suite
    public let ownSession: UInt64
    /// The one key id this opener takes (check 1d): 0 between point-to-point
    /// peers, the client's key id in server mode.
    public let keyId: UInt32
    /// TAP mode (check 1c): only datagrams with flags bit 0 set, each
    /// carrying an Ethernet frame (check 10); false: TUN mode, IP packets.
    public let ethernet: Bool
    /// This end's sessions of its former runs (PROTOCOL.md §6, check 2).
    public let formerSessions: [UInt64]
    /// T_start (PROTOCOL.md §6, check 6) as the wall clock reads now: the
    /// start time given to `init`, moved by `clockRead` with every step the
    /// wall clock has made since.
    public private(set) var startMs: UInt64
    /// This run's start on both clocks.
    private let start: RunStart
    public let skewMs: UInt64
    /// The peer's current session, once one datagram passed every check.
    public var peerSession: UInt64? { currentSession }
    private var currentSession: UInt64?
    /// Key derivations made for sessions newer than the current one (a cost
    /// an attacker can cause; shown by `status`).
    public var derivations: UInt64 { derivationCount }
    private var derivationCount: UInt64 = 0

    /// Where the keys of the peer's sessions come from.
    private let deriver: Keys
    private var current: Cipher
    /// The MAC key (and, once a datagram passed the MAC, all keys) of the
    /// last newer session tried, so a restarted peer's stream costs one
    /// derivation, not one per datagram.
    private var candidate: Cipher
    private var candidateSession: UInt64?
    private let budget: DerivationAllowance
    private var window = ReplayWindow()
    /// The counter of the datagram that established `peerSession` here.
    private var firstCounter: UInt64 = 0

    /// A peer's new session needs new keys: `keySource` makes them.
    /// `startMonotonicMs`: CLOCK_MONOTONIC at the moment `startMs` was read
    /// (for `clockRead`).
    public init(algorithms: CryptoAlgorithms, keySource: Keys, ownSession: UInt64,
                startMs: UInt64, startMonotonicMs: UInt64 = 0, formerSessions: [UInt64] = [],
                skewSeconds: Int,
                derivationsPerSecond: UInt64 = DerivationBudget.perSecond,
                derivationBurst: UInt64 = DerivationBudget.burst, keyId: UInt32 = 0,
                ethernet: Bool = false, sharedAllowance: DerivationAllowance? = nil) throws {
        self.ownSession = ownSession
        self.keyId = keyId
        self.ethernet = ethernet
        self.formerSessions = formerSessions
        self.startMs = startMs
        start = RunStart(session: ownSession, wallMs: startMs, monotonicMs: startMonotonicMs)
        self.skewMs = UInt64(max(skewSeconds, 0)) * 1000
        deriver = keySource
        current = try Cipher(algorithms: algorithms)
        candidate = try Cipher(algorithms: algorithms)
        budget = sharedAllowance ?? DerivationAllowance(perSecond: derivationsPerSecond, burst: derivationBurst)
    }

    @inline(__always)
    static func isIPVersion(_ nibble: UInt8) -> Bool { nibble == 4 || nibble == 6 }

    /// The shortest payload of a TAP-mode data datagram: an Ethernet header
    /// (destination, source, EtherType).
    public static var minimumFrameLength: Int { 14 }

    /// Tells the opener what both clocks read now (once per batch of
    /// datagrams is enough): T_start follows steps of the wall clock, so
    /// that NTP stepping this host's clock back neither blackholes a peer
    /// that starts a session nor, stepped forward, lets older datagrams in.
    public func clockRead(wallMs: UInt64, monotonicMs: UInt64) {
        startMs = start.startOnWallClock(wallNowMs: wallMs, monotonicNowMs: monotonicMs)
    }

    /// Runs every check on `packet` (a whole datagram, decrypted in place if
    /// authentic). `fromPeer`: it came from the peer's current address.
    /// `nowMs`: the wall clock (checks 5 and 6); `monotonicMs`: a monotonic
    /// clock for the derivation budget.
    /// For any suite and key source; with a `SessionKeyDeriver` the entry
    /// below is taken, compiled for the suite here.
    public func open(_ packet: UnsafeMutableRawBufferPointer, fromPeer: Bool, nowMs: UInt64,
                     monotonicMs: UInt64) -> OpenOutcome {
        check(packet, fromPeer: fromPeer, nowMs: nowMs, monotonicMs: monotonicMs)
    }

    @inline(__always)
    func check(_ packet: UnsafeMutableRawBufferPointer, fromPeer: Bool, nowMs: UInt64,
               monotonicMs: UInt64) -> OpenOutcome {
        // 1. Length, version, suite, type, flags and mode, key id, the
        // suite's length rule (1a–1e): this end's suite, this end's mode
        // (TUN or TAP), and this end's key id (0 between point-to-point peers).
        let h: Header
        switch Header.parse(UnsafeRawBufferPointer(packet), suite: Suite.self, ethernet: ethernet, keyId: keyId) {
        case .success(let header): h = header
        case .failure(let e): return .drop(e.dropReason)
        }
        let isCurrent = h.session == peerSession
        // 2. Our own datagram, sent back: of this run or of a former one
        // (the current peer session is neither: it passed this check).
        if !isCurrent && (h.session == ownSession || formerSessions.contains(h.session)) {
            return .drop(.reflected)
        }
        // 3. Older than the peer's current session.
        if let p = peerSession, h.session < p { return .drop(.oldSession) }
        // 4. MAC or AEAD tag, with the keys of the datagram's session. A session not
        // seen before gets its MAC key only (`setVerifyKey`), and only
        // within the budget unless the datagram comes from the peer's address.
        let cipher: Cipher
        if isCurrent {
            cipher = current
        } else {
            if candidateSession != h.session {
                if !fromPeer && !budget.take(nowMs: monotonicMs) { return .drop(.rateLimited) }
                candidateSession = nil
                derivationCount += 1
                guard deriver.setVerifyKey(of: h.session, in: candidate) else {
                    return .drop(fromPeer ? .badMAC : .unknownSender)
                }
                candidateSession = h.session
            }
            cipher = candidate
        }
        // (An AEAD checks its tag and decrypts in place in one step: its
        // plaintext stays in this buffer, unused, until the checks below pass.)
        guard cipher.verify(packet) else {
            return .drop(fromPeer ? .badMAC : .unknownSender)
        }
        // 5. Time skew. 6. Not sealed before our start, for a session being
        // established and for counters below the first we accepted in the
        // current one: the window knows nothing of what the peer sent before
        // we started, so those could be recordings. Counters above it were
        // sealed after a datagram that passed this check, so a later step of
        // either clock cannot cut an established session off.
        if skewMs > 0 {
            let t = h.timestampMs
            let diff = t > nowMs ? t - nowMs : nowMs - t
            if diff > skewMs { return .drop(.timeSkew) }
            if (!isCurrent || h.counter < firstCounter) && t < startMs { return .drop(.replay) }
        }
        // 7. Replay window of the current session (a newer one starts empty).
        if isCurrent && !window.check(h.counter) { return .drop(.replay) }
        // 8. Decrypt (a new session's CBC keys are made now, once: the MAC
        // passed; an AEAD's are all made for check 4 and it decrypted there).
        // 9. Padding (CBC only).
        if !cipher.hasCipherKeys {
            do { try deriver.setKeys(of: h.session, in: cipher) } catch {
                candidateSession = nil
                return .drop(.malformed)
            }
        }
        guard let length = cipher.decrypt(packet) else { return .drop(.malformed) }
        // 10. Type rules: data is one IPv4 or IPv6 packet (TAP mode: one
        // Ethernet frame, at least its header), a keepalive is empty.
        switch h.type {
        case .data where length == 0: return .drop(.malformed)
        case .data where ethernet: if length < Self.minimumFrameLength { return .drop(.malformed) }
        case .data where !Self.isIPVersion(packet[Cipher.Suite.payloadStart] >> 4): return .drop(.malformed)
        case .keepalive where length != 0: return .drop(.malformed)
        default: break
        }
        // Every check passed: now, and only now, change state.
        if !isCurrent {
            swap(&current, &candidate)
            candidateSession = nil
            currentSession = h.session
            firstCounter = h.counter
            window.reset()
        }
        window.mark(h.counter)
        return h.type == .data ? .data(length: length) : .keepalive
    }
}

extension SuiteOpener where Keys == SessionKeyDeriver {
    /// The opener of a pre-shared key: only its PRK is kept (inside
    /// `SessionKeyDeriver`).
    public convenience init(algorithms: CryptoAlgorithms, psk: SecretBytes, ownSession: UInt64,
                            startMs: UInt64, startMonotonicMs: UInt64 = 0, formerSessions: [UInt64] = [],
                            skewSeconds: Int,
                            derivationsPerSecond: UInt64 = DerivationBudget.perSecond,
                            derivationBurst: UInt64 = DerivationBudget.burst, keyId: UInt32 = 0,
                            ethernet: Bool = false, sharedAllowance: DerivationAllowance? = nil) throws {
        try self.init(algorithms: algorithms, keySource: SessionKeyDeriver(psk: psk), ownSession: ownSession,
                      startMs: startMs, startMonotonicMs: startMonotonicMs, formerSessions: formerSessions,
                      skewSeconds: skewSeconds, derivationsPerSecond: derivationsPerSecond,
                      derivationBurst: derivationBurst, keyId: keyId, ethernet: ethernet,
                      sharedAllowance: sharedAllowance)
    }
}

extension SuiteOpener where Keys == SessionKeyDeriver {
    /// `open` for a pre-shared key (or a keypair's tunnel key), through the
    /// cipher's `open(_:with:...)` entry, compiled for its suite in this
    /// module (see `SuiteCipher`), whoever calls it.
    public func open(_ packet: UnsafeMutableRawBufferPointer, fromPeer: Bool, nowMs: UInt64,
                     monotonicMs: UInt64) -> OpenOutcome {
        Cipher.open(packet, with: self, fromPeer: fromPeer, nowMs: nowMs, monotonicMs: monotonicMs)
    }
}

/// The opener of the default suite with keys from a pre-shared key.
public typealias Opener = SuiteOpener<PacketCipher, SessionKeyDeriver>
