import Shared
import XCTest
@testable import squtun_crypto

/// The receiver's time checks against the two clocks (PROTOCOL.md §6,
/// checks 5 and 6; §8): real OpenSSL, both ends in this process, the
/// clocks given by the test instead of read from the machine.
final class OpenerClockTests: XCTestCase {
    let alg = try! CryptoAlgorithms()
    let psk = CT.psk(7)
    let start: UInt64 = 1_795_000_000_000  // the receiver's start, ms since the epoch
    let hour: UInt64 = 3_600_000

    func sealer(_ session: UInt64) throws -> Sealer { try Sealer(algorithms: alg, psk: psk, session: session) }

    func receiver() throws -> Opener {
        try Opener(algorithms: alg, psk: psk, ownSession: start * 1_000_000 + 1, startMs: start,
                   startMonotonicMs: 50_000, skewSeconds: 30)
    }

    /// A data datagram of `s` sealed at `at` (the sender's clock, ms).
    func datagram(_ s: Sealer, at: UInt64) throws -> [UInt8] {
        var payload = CT.payload(40)
        payload[0] = 0x45  // an IPv4 packet's first byte (check 10)
        var buf = [UInt8](repeating: 0, count: Wire.packetLength(payload: payload.count))
        let n = try buf.withUnsafeMutableBytes { p -> Int in
            p.baseAddress!.advanced(by: Wire.offsetCiphertext).copyMemory(from: payload, byteCount: payload.count)
            return try s.seal(type: .data, payloadLength: payload.count, packet: p, nowMs: at)
        }
        return Array(buf[0..<n])
    }

    func open(_ o: Opener, _ d: [UInt8], now: UInt64) -> OpenOutcome {
        var p = d
        return p.withUnsafeMutableBytes { o.open($0, fromPeer: true, nowMs: now) }
    }

    /// Both hosts' clocks were an hour ahead and NTP steps both back: the
    /// established session goes on (it used to be refused as replay for the
    /// hour), and a session the peer starts after the step is accepted too
    /// (T_start moved back with the step).
    func testClocksSteppedBackDoNotBlackholeTheTunnel() throws {
        let o = try receiver()
        let peer = try sealer(start * 1_000_000 - 5)
        o.clockRead(wallMs: start + 1_000, monotonicMs: 51_000)
        XCTAssertEqual(open(o, try datagram(peer, at: start + 1_000), now: start + 1_000), .data(length: 40))
        // 10 s after the start both clocks step back by an hour.
        let stepped = start + 10_000 - hour
        o.clockRead(wallMs: stepped, monotonicMs: 60_000)
        XCTAssertEqual(o.startMs, start - hour, "T_start follows the step")
        for k in 0..<5 as Range<UInt64> {
            XCTAssertEqual(open(o, try datagram(peer, at: stepped + k), now: stepped + k), .data(length: 40))
        }
        // The peer restarts after the step: its new session is established.
        let restarted = try sealer(start * 1_000_000 + 20_000_000_000)
        o.clockRead(wallMs: stepped + 5_000, monotonicMs: 65_000)
        XCTAssertEqual(open(o, try datagram(restarted, at: stepped + 5_000), now: stepped + 5_000), .data(length: 40))
        XCTAssertEqual(o.peerSession, start * 1_000_000 + 20_000_000_000)
    }

    /// What check 6 is for stays: after a restart, datagrams sealed before
    /// the start (recorded, replayed) do not establish a session, whether
    /// the clock stepped since or not.
    func testDatagramsFromBeforeTheStartDoNotEstablishASession() throws {
        let o = try receiver()
        let peer = try sealer(start * 1_000_000 - 60_000_000_000)
        let recorded = try datagram(peer, at: start - 2_000)
        o.clockRead(wallMs: start + 1_000, monotonicMs: 51_000)
        XCTAssertEqual(open(o, recorded, now: start + 1_000), .drop(.replay))
        // The receiver's clock steps forward 20 s (it was behind): still refused.
        o.clockRead(wallMs: start + 22_000, monotonicMs: 52_000)
        XCTAssertEqual(o.startMs, start + 20_000)
        XCTAssertEqual(open(o, recorded, now: start + 22_000), .drop(.replay))
        XCTAssertNil(o.peerSession)
        // A fresh datagram of the same session establishes it; the recording
        // then fails on the window if it was seen, and check 6 no longer
        // applies to the established session: an older counter not seen is
        // accepted once (the window's rule), a seen one is a replay.
        let fresh = try datagram(peer, at: start + 22_000)
        XCTAssertEqual(open(o, fresh, now: start + 22_000), .data(length: 40))
        XCTAssertEqual(open(o, fresh, now: start + 22_000), .drop(.replay))
    }

    /// A session being established from before our start is refused, but
    /// one from after it is not, even when it is older than our own session
    /// (the peer started first).
    func testCheck6AppliesOnlyWhileEstablishing() throws {
        let o = try receiver()
        let peer = try sealer(start * 1_000_000 - 1)
        o.clockRead(wallMs: start + 100, monotonicMs: 50_100)
        XCTAssertEqual(open(o, try datagram(peer, at: start - 1), now: start + 100), .drop(.replay))
        XCTAssertEqual(open(o, try datagram(peer, at: start + 50), now: start + 100), .data(length: 40))
        // Established: a datagram whose timestamp is before T_start but
        // within the skew (the peer's clock 1 s behind) passes.
        XCTAssertEqual(open(o, try datagram(peer, at: start - 900), now: start + 100), .data(length: 40))
    }
}

/// Check 2 with former sessions (PROTOCOL.md §2, §6): a restarted end's
/// own earlier datagrams, sent back, are refused even with the time checks
/// off, and do not displace the peer's session.
final class OpenerFormerSessionTests: XCTestCase {
    func testFormerOwnSessionsAreReflected() throws {
        let alg = try CryptoAlgorithms()
        let psk = CT.psk(9)
        let former: UInt64 = 1_795_000_000_900_000_000
        let o = try Opener(algorithms: alg, psk: psk, ownSession: 1_795_000_001_000_000_000, startMs: 0,
                           formerSessions: [former], skewSeconds: 0)
        let peer = try Sealer(algorithms: alg, psk: psk, session: 1_795_000_000_100_000_000)
        let old = try Sealer(algorithms: alg, psk: psk, session: former)
        func datagram(_ s: Sealer) throws -> [UInt8] {
            var buf = [UInt8](repeating: 0, count: 200)
            buf[Wire.offsetCiphertext] = 0x45
            let n = try buf.withUnsafeMutableBytes { try s.seal(type: .data, payloadLength: 20, packet: $0, nowMs: 5) }
            return Array(buf[0..<n])
        }
        func open(_ d: [UInt8]) -> OpenOutcome {
            var p = d
            return p.withUnsafeMutableBytes { o.open($0, fromPeer: true, nowMs: 5) }
        }
        XCTAssertEqual(open(try datagram(peer)), .data(length: 20))
        XCTAssertEqual(open(try datagram(old)), .drop(.reflected), "newer than the peer's, but our own")
        XCTAssertEqual(o.peerSession, 1_795_000_000_100_000_000)
        XCTAssertEqual(open(try datagram(peer)), .data(length: 20))
    }
}
