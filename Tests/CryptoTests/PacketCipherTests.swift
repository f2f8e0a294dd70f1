import COpenSSL
import Shared
import XCTest
@testable import squtun_crypto

final class PacketCipherTests: XCTestCase {
    var alg: CryptoAlgorithms!
    var keys: SessionKeys!
    var sender: PacketCipher!
    var receiver: PacketCipher!
    let session: UInt64 = 0x1122_3344_5566_7788

    override func setUpWithError() throws {
        alg = try CryptoAlgorithms()
        keys = try SessionKeys(algorithms: alg, psk: CT.psk(), session: session)
        sender = try PacketCipher(algorithms: alg)
        try sender.setKeys(keys)
        receiver = try PacketCipher(algorithms: alg)
        try receiver.setKeys(keys)
    }

    func header(_ counter: UInt64, _ type: PacketType = .data) -> Header {
        Header(type: type, session: session, counter: counter, timestampMs: 1_700_000_000_000 &+ counter)
    }

    func testRoundTripsInPlace() throws {
        for length in Array(0...100) + [1400, Wire.maxPayloadLength] {
            let payload = CT.payload(length, seed: length)
            let packet = try CT.seal(sender, header(UInt64(length)), payload)
            XCTAssertEqual(packet.count, Wire.packetLength(payload: length))
            XCTAssertEqual((packet.count - Wire.fixedOverhead) % 16, 0)
            if length >= 16 {
                XCTAssertNotEqual(Array(packet[Wire.offsetCiphertext..<(Wire.offsetCiphertext + 16)]),
                                  Array(payload[0..<16]), "payload left in clear, length \(length)")
            }
            guard case .success(let h) = Header.parse(UnsafeRawBufferPointer(packet.withUnsafeBytes { $0 })) else {
                XCTFail("header does not parse, length \(length)"); continue
            }
            XCTAssertEqual(h, header(UInt64(length)))
            XCTAssertEqual(CT.open(receiver, packet), payload, "length \(length)")
            XCTAssertEqual(CT.open(sender, packet), payload, "same object, length \(length)")
        }
    }

    func testSealInLargerBufferReturnsDatagramLength() throws {
        var buf = [UInt8](repeating: 0xee, count: 2048)
        let payload = CT.payload(1400)
        let n = try buf.withUnsafeMutableBytes { p -> Int in
            p.baseAddress!.advanced(by: Wire.offsetCiphertext).copyMemory(from: payload, byteCount: payload.count)
            return try sender.seal(header: header(1), payloadLength: 1400, packet: p)
        }
        XCTAssertEqual(n, Wire.packetLength(payload: 1400))
        XCTAssertTrue(buf[n...].allSatisfy { $0 == 0xee }, "wrote past the datagram")
        XCTAssertEqual(CT.open(receiver, Array(buf[0..<n])), payload)
    }

    func testSealLimits() throws {
        var buf = [UInt8](repeating: 0, count: Wire.maxPacketLength + 100)
        try buf.withUnsafeMutableBytes { p in
            XCTAssertThrowsError(try sender.seal(header: header(1), payloadLength: Wire.maxPayloadLength + 1, packet: p)) {
                XCTAssertEqual($0 as? CryptoError, .payloadTooLong(65424))
            }
            XCTAssertThrowsError(try sender.seal(header: header(1), payloadLength: -1, packet: p)) {
                XCTAssertEqual($0 as? CryptoError, .payloadTooLong(-1))
            }
            let n = try sender.seal(header: header(1), payloadLength: Wire.maxPayloadLength, packet: p)
            XCTAssertEqual(n, 65504)  // 80 + 65424: fits IPv4's 65507-byte UDP payload limit
        }
        var small = [UInt8](repeating: 0, count: Wire.packetLength(payload: 100) - 1)
        try small.withUnsafeMutableBytes { p in
            XCTAssertThrowsError(try sender.seal(header: header(1), payloadLength: 100, packet: p)) {
                XCTAssertEqual($0 as? CryptoError, .bufferTooSmall(needed: Wire.packetLength(payload: 100), available: p.count))
            }
        }
    }

    func testUnkeyedCipherRefuses() throws {
        let c = try PacketCipher(algorithms: alg)
        XCTAssertThrowsError(try CT.seal(c, header(1), [1, 2, 3])) { XCTAssertEqual($0 as? CryptoError, .noKeys) }
        let packet = try CT.seal(sender, header(1), [1, 2, 3])
        XCTAssertFalse(CT.verify(c, packet))
        var copy = packet
        XCTAssertNil(copy.withUnsafeMutableBytes { c.decrypt($0) })
    }

    func testVerifyRejectsEveryFlippedBit() throws {
        // 208 bytes: the datagram lengths are 80 + 16n, 200 is not one of them.
        var packet = try CT.seal(sender, header(5), CT.payload(120))
        XCTAssertEqual(packet.count, 208)
        XCTAssertTrue(CT.verify(receiver, packet))
        for bit in 0..<(packet.count * 8) {
            packet[bit / 8] ^= 1 << UInt8(bit % 8)
            XCTAssertFalse(CT.verify(receiver, packet), "flipped bit \(bit) accepted")
            packet[bit / 8] ^= 1 << UInt8(bit % 8)
        }
        XCTAssertTrue(CT.verify(receiver, packet))
    }

    func testVerifyRejectsTruncationAndExtension() throws {
        let packet = try CT.seal(sender, header(6), CT.payload(100))
        for n in 0..<packet.count {
            XCTAssertFalse(CT.verify(receiver, Array(packet[0..<n])), "prefix of \(n) bytes accepted")
        }
        // Dropping whole blocks before the MAC, or the first bytes.
        var cut = Array(packet[0..<(packet.count - 48)]) + Array(packet[(packet.count - 32)...])
        XCTAssertFalse(CT.verify(receiver, cut))
        cut = Array(packet[16...])
        XCTAssertFalse(CT.verify(receiver, cut))
        XCTAssertFalse(CT.verify(receiver, packet + [UInt8](repeating: 0, count: 16)))
    }

    func testVerifyRejectsWrongKeys() throws {
        let packet = try CT.seal(sender, header(7), CT.payload(64))
        let otherSession = try CT.cipher(alg, psk: CT.psk(), session: session + 1)
        let otherPSK = try CT.cipher(alg, psk: CT.psk(0x43), session: session)
        XCTAssertFalse(CT.verify(otherSession, packet))
        XCTAssertFalse(CT.verify(otherPSK, packet))
        XCTAssertNil(CT.open(otherSession, packet))
        XCTAssertTrue(CT.verify(receiver, packet))
    }

    func testHandmadePacketMatchesSeal() throws {
        // Sanity of the hand-building helper, so the padding tests below test decrypt.
        let payload = CT.payload(20)
        let plain = payload + [UInt8](repeating: 12, count: 12)
        XCTAssertEqual(CT.handmade(keys: keys, header: header(9), plaintext: plain),
                       try CT.seal(sender, header(9), payload))
    }

    func testBadPaddingWithValidMACIsRejected() throws {
        let body = CT.payload(30)
        var cases: [(String, [UInt8])] = [
            ("last byte 0", body + [1, 0]),
            ("last byte 17", body + [17, 17]),
            ("p=17, the last 17 bytes all 17", CT.payload(15) + [UInt8](repeating: 17, count: 17)),
            ("last byte 255", body + [0xff, 0xff]),
            ("p=2, other byte differs", body + [3, 2]),
            ("p=16, first byte differs", [UInt8](repeating: 16, count: 15).reduce(into: [15]) { $0.append($1) }),
        ]
        // p=16 over two blocks where the block's earlier byte is wrong.
        cases.append(("p=5, third from last differs", CT.payload(11) + [5, 5, 4, 5, 5]))
        for (name, plain) in cases {
            XCTAssertEqual(plain.count % 16, 0, name)
            let packet = CT.handmade(keys: keys, header: header(10), plaintext: plain)
            XCTAssertTrue(CT.verify(receiver, packet), "\(name): MAC should be valid")
            var copy = packet
            XCTAssertNil(copy.withUnsafeMutableBytes { receiver.decrypt($0) }, name)
        }
        // The same construction with correct padding is accepted (the check can pass).
        for (plain, expect) in [(body + [2, 2], 30), ([UInt8](repeating: 16, count: 16), 0), (CT.payload(11) + [5, 5, 5, 5, 5], 11)] {
            var packet = CT.handmade(keys: keys, header: header(11), plaintext: plain)
            XCTAssertTrue(CT.verify(receiver, packet))
            XCTAssertEqual(packet.withUnsafeMutableBytes { receiver.decrypt($0) }, expect)
            XCTAssertEqual(Array(packet[Wire.offsetCiphertext..<(Wire.offsetCiphertext + expect)]), Array(plain[0..<expect]))
        }
    }

    func testDecryptRejectsBadLengths() throws {
        let packet = try CT.seal(sender, header(12), CT.payload(40))
        for n in [0, 91, packet.count - 1, packet.count - 8] {
            var p = Array(packet[0..<n])
            XCTAssertNil(p.withUnsafeMutableBytes { receiver.decrypt($0) }, "length \(n)")
        }
    }

    func testIVIsECBOfSessionAndCounter() throws {
        var previous: [UInt8]? = nil
        for counter: UInt64 in [0, 1, 2, 3, 255, 256, 0xffff_ffff_ffff_ffff] {
            let packet = try CT.seal(sender, header(counter), [0xab])
            let iv = Array(packet[Wire.offsetIV..<Wire.offsetCiphertext])
            XCTAssertEqual(iv, CT.aes("AES-256-ECB", key: keys.iv, iv: nil, CT.ivInput(session, counter)), "counter \(counter)")
            XCTAssertNotEqual(iv, CT.ivInput(session, counter))
            if let previous { XCTAssertNotEqual(iv, previous) }
            previous = iv
            // Same counter, same IV (deterministic); the timestamp does not enter it.
            var h = header(counter); h.timestampMs = 0
            XCTAssertEqual(Array(try CT.seal(sender, h, [0xab])[Wire.offsetIV..<Wire.offsetCiphertext]), iv)
        }
    }

    /// The HMAC restarts from its precomputed keyed states on every packet:
    /// every packet of a long-lived cipher equals one from a freshly keyed one,
    /// and its MAC equals OpenSSL's one-shot HMAC (EVP_Q_mac) with K_mac.
    func testHMACStatesAreReusedCorrectly() throws {
        var packets: [[UInt8]] = []
        for counter: UInt64 in 0..<20 {
            let payload = CT.payload(Int(counter) * 37, seed: Int(counter))
            let p = try CT.seal(sender, header(counter), payload)
            let fresh = try CT.cipher(alg, psk: CT.psk(), session: session)
            XCTAssertEqual(p, try CT.seal(fresh, header(counter), payload), "counter \(counter)")
            XCTAssertEqual(Array(p.suffix(32)), CT.hmacSHA256(key: keys.mac, Array(p.dropLast(32))))
            packets.append(p)
        }
        // Verifying many in a row with one context (verify re-inits too).
        for p in packets { XCTAssertTrue(CT.verify(receiver, p)) }
    }

    /// PacketCipher keeps its CBC contexts chaining across packets instead of
    /// re-initialising them: whatever happened before (other lengths, failed
    /// opens, bad padding, a key change), every datagram must equal the one
    /// a freshly keyed cipher makes, and every open must give the payload.
    func testLongLivedContextsMatchFreshOnes() throws {
        let other = try SessionKeys(algorithms: alg, psk: CT.psk(), session: session ^ 1)
        let c = try PacketCipher(algorithms: alg)
        try c.setKeys(keys)
        let peer = try CT.cipher(alg, psk: CT.psk(), session: session)
        var counter: UInt64 = 0
        for round in 0..<60 {
            counter += 1
            let length = (round * 97) % 1500
            let payload = CT.payload(length, seed: round)
            let mine = try CT.seal(c, header(counter), payload)
            let fresh = try CT.seal(try CT.cipher(alg, psk: CT.psk(), session: session), header(counter), payload)
            XCTAssertEqual(mine, fresh, "round \(round)")
            // Opened by a long-lived peer, and by ourselves.
            XCTAssertEqual(CT.open(peer, mine), payload, "round \(round)")
            XCTAssertEqual(CT.open(c, try CT.seal(peer, header(counter + 1000), payload)), payload, "round \(round)")
            switch round % 5 {
            case 0:  // a decrypt that fails on padding (valid MAC)
                var bad = CT.handmade(keys: keys, header: header(counter), plaintext: CT.payload(31, seed: round) + [0])
                XCTAssertTrue(CT.verify(c, bad))
                XCTAssertNil(bad.withUnsafeMutableBytes { c.decrypt($0) })
            case 1:  // a decrypt refused on length
                var short = Array(mine.dropLast(8))
                XCTAssertNil(short.withUnsafeMutableBytes { c.decrypt($0) })
            case 2:  // decrypting garbage of the right shape (what a caller skipping verify would do)
                var junk = CT.payload(Wire.packetLength(payload: 40), seed: round)
                _ = junk.withUnsafeMutableBytes { c.decrypt($0) }
            case 3:  // other keys for a while, then back
                try c.setKeys(other)
                _ = try CT.seal(c, header(counter), payload)
                try c.setKeys(keys)
            default:
                break
            }
        }
    }

    func testSetKeysSwitchesSession() throws {
        let c = try PacketCipher(algorithms: alg)
        let other = try SessionKeys(algorithms: alg, psk: CT.psk(), session: session + 1)
        try c.setKeys(other)
        var h = header(1); h.session = session + 1
        let p1 = try CT.seal(c, h, [1, 2, 3])
        XCTAssertFalse(CT.verify(receiver, p1))
        try c.setKeys(keys)
        let p2 = try CT.seal(c, header(1), [1, 2, 3])
        XCTAssertTrue(CT.verify(receiver, p2))
        XCTAssertEqual(CT.open(receiver, p2), [1, 2, 3])
        XCTAssertFalse(CT.verify(c, p1))
    }

    func testKeysMayBeDroppedAfterSetKeys() throws {
        let c = try PacketCipher(algorithms: alg)
        do {
            let k = try SessionKeys(algorithms: alg, psk: CT.psk(), session: session)
            try c.setKeys(k)
            k.wipe()
        }
        XCTAssertEqual(CT.open(c, try CT.seal(sender, header(3), [9, 8, 7])), [9, 8, 7])
    }

    func testConstantTimeEquals() {
        let a = CT.payload(32)
        XCTAssertTrue(a.withUnsafeBytes { x in a.withUnsafeBytes { constantTimeEquals(x, $0) } })
        for i in 0..<32 {
            var b = a
            b[i] ^= 0x80
            XCTAssertFalse(a.withUnsafeBytes { x in b.withUnsafeBytes { constantTimeEquals(x, $0) } }, "byte \(i)")
        }
        let shorter = Array(a.dropLast())
        XCTAssertFalse(a.withUnsafeBytes { x in shorter.withUnsafeBytes { constantTimeEquals(x, $0) } })
        let e: [UInt8] = []
        XCTAssertTrue(e.withUnsafeBytes { x in e.withUnsafeBytes { constantTimeEquals(x, $0) } })
    }

    func testRandomBytes() throws {
        var a = [UInt8](repeating: 0, count: 32), b = a
        try a.withUnsafeMutableBytes { try randomBytes($0) }
        try b.withUnsafeMutableBytes { try randomBytes($0) }
        XCTAssertNotEqual(a, b)
        XCTAssertFalse(a.allSatisfy { $0 == 0 })
        var empty: [UInt8] = []
        try empty.withUnsafeMutableBytes { try randomBytes($0) }
    }

    func testErrorsDescribeOneLine() {
        XCTAssertNil(EVP_CIPHER_fetch(nil, "NO-SUCH-CIPHER", nil))
        let e = CryptoError.fetch(algorithm: "NO-SUCH-CIPHER", openssl: CryptoError.opensslError())
        XCTAssertTrue(e.description.contains("NO-SUCH-CIPHER"), e.description)
        XCTAssertTrue(e.description.contains("error:"), "OpenSSL error string expected: \(e.description)")
        XCTAssertFalse(e.description.contains("\n"))
        XCTAssertEqual(CryptoError.opensslError(), "no OpenSSL error queued")
        for e in [CryptoError.payloadTooLong(65424), .bufferTooSmall(needed: 2, available: 1), .noKeys,
                  .keyLength(what: "PSK", expected: 32, actual: 3), .operation("HMAC-SHA256", openssl: "x"),
                  .initialization(openssl: "y")] {
            XCTAssertFalse(e.description.isEmpty || e.description.contains("\n"))
        }
    }
}
