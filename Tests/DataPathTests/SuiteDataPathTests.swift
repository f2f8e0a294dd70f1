import XCTest
import SqutunSystem
import SqutunDataPath
import Shared
import squtun_crypto

/// Two Devices per cipher suite over the fake network: traffic both ways
/// byte exact, keepalives, a forged datagram refused; and two ends of
/// different suites: every datagram dropped as wrong-suite, counted, nothing
/// on either device, one log line each naming both suites.
final class SuiteDataPathTests: XCTestCase {
    let clock = FakeClock()
    let net = FakeNetwork()
    let addrA = address("198.51.100.1", 51820)
    let addrB = address("198.51.100.2", 51820)
    lazy var sessionA = End.session(wallMs: clock.wallMs, low: 0xA)
    lazy var sessionB = End.session(wallMs: clock.wallMs, low: 0xB)

    func testEverySuiteCarriesTrafficBothWays() throws {
        try bothWays(PacketCipher.self)
        try bothWays(AES256GCMCipher.self)
        try bothWays(ChaCha20Poly1305Cipher.self)
    }

    private func bothWays<C: SuiteCipher>(_: C.Type) throws {
        let net = FakeNetwork()
        let a = try SuiteEnd<C>(at: addrA, peer: addrB, session: sessionA, clock: clock, network: net, keepaliveMs: 1000)
        let b = try SuiteEnd<C>(at: addrB, peer: nil, session: sessionB, clock: clock, network: net, keepaliveMs: 1000)
        let name = "\(C.self)"
        // Sizes up to the suite's largest payload.
        let sizes = (0..<150).map { 20 + $0 * 211 % 1480 } + [C.Suite.maxPayloadLength]
        let aToB = sizes.enumerated().map { ipPacket($1, seed: UInt64($0)) }
        XCTAssertNil(a.send(aToB))
        while !a.tun.toRead.isEmpty { XCTAssertNil(a.device.send()) }
        while !b.socket.inbox.isEmpty { b.device.receive() }
        XCTAssertEqual(b.tun.written, aToB, name)
        for d in net.sent where d.from == addrA {
            XCTAssertEqual(d.bytes[Wire.offsetSuite], C.Suite.id, name)
            XCTAssertEqual(d.bytes[Wire.offsetVersion], 2, name)
        }
        let bToA = (0..<70).map { ipPacket(40 + $0 * 17, seed: 1000 + UInt64($0)) }
        XCTAssertNil(b.send(bToA))
        while !a.socket.inbox.isEmpty { a.device.receive() }
        XCTAssertEqual(a.tun.written, bToA, name)
        // A keepalive each way once they are due.
        clock.advance(ms: 1001)
        a.device.sendKeepalivesIfDue()
        b.device.receive()
        XCTAssertEqual(b.status("keepalives-received"), "1", name)
        // A forged datagram (one tag/MAC bit) is refused and counted.
        var forged = net.sent.last { $0.from == addrB }!.bytes
        forged[forged.count - 1] ^= 1
        net.inject(forged, from: addrB, to: addrA)
        let before = a.tun.written.count
        a.device.receive()
        XCTAssertEqual(a.dropped(.badMAC), 1, name)
        XCTAssertEqual(a.tun.written.count, before, name)
        for r in DropReason.allCases where r != .badMAC { XCTAssertEqual(a.dropped(r), 0, "\(name) \(r.name)") }
        XCTAssertEqual(a.logs, [], name)
    }

    func testDifferentSuitesDropEverythingAsWrongSuiteAndSayItOnce() throws {
        let a = try SuiteEnd<PacketCipher>(at: addrA, peer: addrB, session: sessionA, clock: clock, network: net)
        let b = try SuiteEnd<ChaCha20Poly1305Cipher>(at: addrB, peer: addrA, session: sessionB, clock: clock,
                                                     network: net)
        let packets = (0..<100).map { ipPacket(100 + $0, seed: UInt64($0)) }
        XCTAssertNil(a.send(packets))
        XCTAssertNil(b.send(packets))
        while !a.socket.inbox.isEmpty || !b.socket.inbox.isEmpty {
            a.device.receive()
            b.device.receive()
        }
        XCTAssertEqual(a.dropped(.wrongSuite), 100)
        XCTAssertEqual(b.dropped(.wrongSuite), 100)
        XCTAssertEqual(a.status("drop-wrong-suite"), "100")
        XCTAssertEqual(a.tun.written, [])
        XCTAssertEqual(b.tun.written, [])
        XCTAssertEqual(a.status("peer-session"), "none", "no state changed")
        XCTAssertEqual(a.status("key-derivations"), "0", "refused before any key is derived")
        XCTAssertEqual(a.logs, ["peer uses chacha20-poly1305, this end aes-256-cbc-hmac-sha256 "
                                + "(datagrams from \(addrB) dropped as wrong-suite; said once)"])
        XCTAssertEqual(b.logs, ["peer uses aes-256-cbc-hmac-sha256, this end chacha20-poly1305 "
                                + "(datagrams from \(addrA) dropped as wrong-suite; said once)"])
    }

    func testUnknownSuiteNumberIsNamedAsSuch() throws {
        let a = try SuiteEnd<AES256GCMCipher>(at: addrA, peer: addrB, session: sessionA, clock: clock, network: net)
        var datagram = [UInt8](repeating: 0, count: 100)
        datagram[0] = 2
        datagram[1] = 9
        for _ in 0..<5 { net.inject(datagram, from: addrB, to: addrA) }
        a.device.receive()
        XCTAssertEqual(a.dropped(.wrongSuite), 5)
        XCTAssertEqual(a.logs, ["peer uses unknown suite 9, this end aes-256-gcm "
                                + "(datagrams from \(addrB) dropped as wrong-suite; said once)"])
    }
}
