import Shared
import XCTest
@testable import squtun_crypto

/// TAP mode end to end through the sealer and the opener of every suite:
/// the sealer sets flags bit 0 in data and keepalives, a TAP opener takes
/// them (a frame need not be IP), a TUN opener refuses them as wrong-mode
/// and the TAP opener a TUN sealer's, both before any state changes; a
/// frame shorter than an Ethernet header is malformed.
final class TapModeTests: XCTestCase {
    let alg = try! CryptoAlgorithms()
    let now: UInt64 = 1_795_000_001_000
    let sender: UInt64 = 1_795_000_000_000_000_000
    let receiver: UInt64 = 1_795_000_000_500_000_000

    func testEverySuite() throws {
        try check(PacketCipher.self)
        try check(AES256GCMCipher.self)
        try check(ChaCha20Poly1305Cipher.self)
    }

    private func opener<C: SuiteCipher>(_: C.Type, ethernet: Bool) throws -> SuiteOpener<C, SessionKeyDeriver> {
        try SuiteOpener(algorithms: alg, psk: CT.psk(), ownSession: receiver, startMs: now - 400, skewSeconds: 30,
                        ethernet: ethernet)
    }

    private func seal<C: SuiteCipher>(_ s: SuiteSealer<C>, _ type: PacketType, _ payload: [UInt8]) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: C.Suite.packetLength(payload: payload.count))
        let n = try buf.withUnsafeMutableBytes { p -> Int in
            p.baseAddress!.advanced(by: C.Suite.payloadStart).copyMemory(from: payload, byteCount: payload.count)
            return try s.seal(type: type, payloadLength: payload.count, packet: p, nowMs: now - 20)
        }
        XCTAssertEqual(n, buf.count)
        return buf
    }

    private func open<C: SuiteCipher>(_ o: SuiteOpener<C, SessionKeyDeriver>, _ packet: [UInt8]) -> (OpenOutcome, [UInt8]) {
        var b = packet
        let outcome = b.withUnsafeMutableBytes { o.open($0, fromPeer: true, nowMs: now, monotonicMs: 1) }
        if case .data(let length) = outcome {
            return (outcome, Array(b[C.Suite.payloadStart..<(C.Suite.payloadStart + length)]))
        }
        return (outcome, [])
    }

    private func check<C: SuiteCipher>(_: C.Type) throws {
        let name = "\(C.self)"
        let tap = try SuiteSealer<C>(algorithms: alg, psk: CT.psk(), session: sender, ethernet: true)
        let tun = try SuiteSealer<C>(algorithms: alg, psk: CT.psk(), session: sender + 1)
        // An ARP request: a frame that carries no IP packet.
        let arp = [UInt8](repeating: 0xff, count: 6) + [2, 0, 0, 0, 10, 1, 0x08, 0x06] + CT.payload(28)
        let frame = try seal(tap, .data, arp)
        let keepalive = try seal(tap, .keepalive, [])
        let short = try seal(tap, .data, Array(arp[..<13]))
        let ip = try seal(tun, .data, [0x45] + CT.payload(35))
        XCTAssertEqual(frame[Wire.offsetFlags], Wire.flagEthernet, name)
        XCTAssertEqual(keepalive[Wire.offsetFlags], Wire.flagEthernet, name)
        XCTAssertEqual(ip[Wire.offsetFlags], 0, name)

        let tunEnd = try opener(C.self, ethernet: false)
        XCTAssertEqual(open(tunEnd, frame).0, .drop(.wrongMode), name)
        XCTAssertEqual(open(tunEnd, keepalive).0, .drop(.wrongMode), name)
        XCTAssertNil(tunEnd.peerSession, "\(name): a wrong-mode datagram changes nothing")
        XCTAssertEqual(tunEnd.derivations, 0, "\(name): refused before any key is derived")

        let tapEnd = try opener(C.self, ethernet: true)
        XCTAssertEqual(open(tapEnd, ip).0, .drop(.wrongMode), name)
        XCTAssertEqual(tapEnd.derivations, 0, name)
        XCTAssertEqual(open(tapEnd, short).0, .drop(.malformed), "\(name): 13 bytes are no Ethernet frame")
        XCTAssertNil(tapEnd.peerSession, "\(name): a malformed frame changes nothing")
        let (outcome, payload) = open(tapEnd, frame)
        XCTAssertEqual(outcome, .data(length: arp.count), name)
        XCTAssertEqual(payload, arp, name)
        XCTAssertEqual(open(tapEnd, keepalive).0, .keepalive, name)
        XCTAssertEqual(tapEnd.peerSession, sender, name)
        XCTAssertEqual(try open(tapEnd, seal(tap, .data, Array(arp[..<14]))).0, .data(length: 14),
                       "\(name): a bare Ethernet header is a frame")
    }
}
