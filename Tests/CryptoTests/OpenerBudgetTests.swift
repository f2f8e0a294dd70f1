import Shared
import XCTest
@testable import squtun_crypto

/// Opener, check 4 for sessions it has not seen: the MAC key alone first,
/// the AES keys only after the MAC passed, and a derivation budget for new
/// sessions from addresses other than the peer's.
final class OpenerBudgetTests: XCTestCase {
    let own: UInt64 = 1_795_000_000_500_000_000
    let startMs: UInt64 = 1_795_000_000_600
    let nowMs: UInt64 = 1_795_000_001_000
    let peerSession: UInt64 = 1_795_000_000_400_000_000

    func opener(_ alg: CryptoAlgorithms, perSecond: UInt64 = 100, burst: UInt64 = 5) throws -> Opener {
        try Opener(algorithms: alg, psk: CT.psk(), ownSession: own, startMs: startMs, skewSeconds: 30,
                   derivationsPerSecond: perSecond, derivationBurst: burst)
    }

    /// 60 bytes that pass check 10 (an IPv4 version nibble).
    let ipPayload: [UInt8] = [0x45] + CT.payload(59)

    /// A datagram of `session` sealed with the real key (or a wrong one).
    func sealed(_ alg: CryptoAlgorithms, session: UInt64, counter: UInt64 = 0, realKey: Bool = true) throws -> [UInt8] {
        let c = try CT.cipher(alg, psk: realKey ? CT.psk() : CT.psk(0x99), session: session)
        return try CT.seal(c, Header(type: .data, session: session, counter: counter, timestampMs: nowMs),
                           ipPayload)
    }

    func open(_ o: Opener, _ packet: [UInt8], fromPeer: Bool, at ms: UInt64) -> OpenOutcome {
        var p = packet
        return p.withUnsafeMutableBytes { o.open($0, fromPeer: fromPeer, nowMs: nowMs, monotonicMs: ms) }
    }

    func testNewSessionsFromElsewhereAreBoundedByTheBudget() throws {
        let alg = try CryptoAlgorithms()
        let o = try opener(alg)
        let forged = try (0..<8).map { try sealed(alg, session: peerSession + 100 + $0, realKey: false) }
        for i in 0..<5 { XCTAssertEqual(open(o, forged[i], fromPeer: false, at: 1000), .drop(.unknownSender)) }
        XCTAssertEqual(open(o, forged[5], fromPeer: false, at: 1000), .drop(.rateLimited))
        XCTAssertEqual(open(o, forged[6], fromPeer: false, at: 1009), .drop(.rateLimited))
        XCTAssertEqual(o.derivations, 5)
        // 100 a second: one token 10 ms later, and one only.
        XCTAssertEqual(open(o, forged[6], fromPeer: false, at: 1010), .drop(.unknownSender))
        XCTAssertEqual(open(o, forged[7], fromPeer: false, at: 1010), .drop(.rateLimited))
        XCTAssertEqual(o.derivations, 6)
        // The last session tried is cached: its datagrams take no token.
        XCTAssertEqual(open(o, forged[6], fromPeer: false, at: 1010), .drop(.unknownSender))
        XCTAssertEqual(o.derivations, 6)
        // From the peer's address: never limited (bad-mac, a derivation each).
        for f in forged { XCTAssertEqual(open(o, f, fromPeer: true, at: 1010), .drop(.badMAC)) }
        XCTAssertEqual(o.derivations, 14)
        XCTAssertNil(o.peerSession)
    }

    /// Openers given one allowance (a server's clients) draw on it
    /// together: forgeries spread over them get no more derivations than
    /// forgeries for one; and still none is needed from the peer's address.
    func testASharedAllowanceBoundsOpenersTogether() throws {
        let alg = try CryptoAlgorithms()
        let shared = DerivationAllowance(perSecond: 100, burst: 5)
        let a = try Opener(algorithms: alg, psk: CT.psk(), ownSession: own, startMs: startMs, skewSeconds: 30,
                           sharedAllowance: shared)
        let b = try Opener(algorithms: alg, psk: CT.psk(), ownSession: own, startMs: startMs, skewSeconds: 30,
                           sharedAllowance: shared)
        let forged = try (0..<8).map { try sealed(alg, session: peerSession + 100 + $0, realKey: false) }
        for i in 0..<3 { XCTAssertEqual(open(a, forged[i], fromPeer: false, at: 1000), .drop(.unknownSender)) }
        for i in 3..<5 { XCTAssertEqual(open(b, forged[i], fromPeer: false, at: 1000), .drop(.unknownSender)) }
        XCTAssertEqual(open(a, forged[5], fromPeer: false, at: 1000), .drop(.rateLimited))
        XCTAssertEqual(open(b, forged[6], fromPeer: false, at: 1000), .drop(.rateLimited))
        XCTAssertEqual(a.derivations + b.derivations, 5)
        // One token 10 ms later, for whichever asks first.
        XCTAssertEqual(open(b, forged[6], fromPeer: false, at: 1010), .drop(.unknownSender))
        XCTAssertEqual(open(a, forged[7], fromPeer: false, at: 1010), .drop(.rateLimited))
        XCTAssertEqual(open(a, forged[7], fromPeer: true, at: 1010), .drop(.badMAC))
        XCTAssertEqual(a.derivations + b.derivations, 7)
        // Openers made without one each have their own.
        let c = try opener(alg), d = try opener(alg)
        for i in 0..<5 { XCTAssertEqual(open(c, forged[i], fromPeer: false, at: 1000), .drop(.unknownSender)) }
        XCTAssertEqual(open(d, forged[5], fromPeer: false, at: 1000), .drop(.unknownSender))
    }

    /// A genuine new session from a new address while the budget is spent
    /// is refused like a forgery (and changes nothing); once a token is
    /// back it is accepted, and from then on it is the current session,
    /// which needs no derivation and no token.
    func testGenuinePeerWaitsForATokenThenNeedsNone() throws {
        let alg = try CryptoAlgorithms()
        let o = try opener(alg, perSecond: 10, burst: 1)
        XCTAssertEqual(open(o, try sealed(alg, session: 7, realKey: false), fromPeer: false, at: 0),
                       .drop(.unknownSender))
        let genuine = try sealed(alg, session: peerSession)
        XCTAssertEqual(open(o, genuine, fromPeer: false, at: 50), .drop(.rateLimited))
        XCTAssertNil(o.peerSession)
        XCTAssertEqual(open(o, genuine, fromPeer: false, at: 100), .data(length: 60))
        XCTAssertEqual(o.peerSession, peerSession)
        XCTAssertEqual(open(o, try sealed(alg, session: 8, realKey: false), fromPeer: false, at: 100),
                       .drop(.oldSession))
        XCTAssertEqual(open(o, try sealed(alg, session: peerSession + 1, realKey: false), fromPeer: false, at: 100),
                       .drop(.rateLimited))
        for c in 1...20 {
            XCTAssertEqual(open(o, try sealed(alg, session: peerSession, counter: UInt64(c)), fromPeer: false, at: 100),
                           .data(length: 60))
        }
        XCTAssertEqual(o.derivations, 2)
    }

    /// A peer that restarted at its address is never held up by the budget.
    func testRestartedPeerAtItsAddressIsNotLimited() throws {
        let alg = try CryptoAlgorithms()
        let o = try opener(alg, perSecond: 1, burst: 1)
        XCTAssertEqual(open(o, try sealed(alg, session: peerSession), fromPeer: true, at: 0), .data(length: 60))
        XCTAssertEqual(open(o, try sealed(alg, session: peerSession + 1, realKey: false), fromPeer: false, at: 0),
                       .drop(.unknownSender))
        XCTAssertEqual(open(o, try sealed(alg, session: peerSession + 2, realKey: false), fromPeer: false, at: 0),
                       .drop(.rateLimited))
        let restarted = peerSession + 1_000_000_000
        XCTAssertEqual(open(o, try sealed(alg, session: restarted), fromPeer: true, at: 0), .data(length: 60))
        XCTAssertEqual(o.peerSession, restarted)
    }

    /// A new session's datagram that passes the MAC but fails a later check
    /// keeps the candidate's keys: the next one of that session opens.
    func testCandidateKeysSurviveALaterCheck() throws {
        let alg = try CryptoAlgorithms()
        let o = try opener(alg)
        let c = try CT.cipher(alg, psk: CT.psk(), session: peerSession)
        let skewed = try CT.seal(c, Header(type: .data, session: peerSession, counter: 0, timestampMs: nowMs + 31_000),
                                 CT.payload(10))
        XCTAssertEqual(open(o, skewed, fromPeer: true, at: 0), .drop(.timeSkew))
        let badPadding = CT.handmade(keys: try SessionKeys(algorithms: alg, psk: CT.psk(), session: peerSession),
                                     header: Header(type: .data, session: peerSession, counter: 1, timestampMs: nowMs),
                                     plaintext: [UInt8](repeating: 0, count: 32))
        XCTAssertEqual(open(o, badPadding, fromPeer: true, at: 0), .drop(.malformed))
        XCTAssertNil(o.peerSession)
        XCTAssertEqual(open(o, try sealed(alg, session: peerSession, counter: 2), fromPeer: true, at: 0), .data(length: 60))
        XCTAssertEqual(o.derivations, 1)
    }
}
