import COpenSSL
import Shared
import XCTest
@testable import squtun_crypto

/// Both AEAD suites through their `SuiteCipher`: round trips, every tamper
/// refused, wrong keys refused, and the datagram byte for byte what a
/// fresh one-shot EVP AEAD call makes with nonce = N_salt XOR counter.
final class AEADCipherTests: XCTestCase {
    let alg = try! CryptoAlgorithms()
    let session: UInt64 = 0x1122_3344_5566_7788

    func keyed<C: AEADSuiteCipher>(_: C.Type, psk: SecretBytes = CT.psk(), session: UInt64? = nil) throws -> C {
        let c = try C(algorithms: alg)
        try SessionKeyDeriver(psk: psk).setKeys(of: session ?? self.session, in: c)
        return c
    }

    func header(_ counter: UInt64, _ type: PacketType = .data) -> Header {
        Header(type: type, session: session, counter: counter, timestampMs: 1_795_000_000_000 &+ counter)
    }

    func forEachSuite(_ body: (any AEADSuiteCipher.Type, String) throws -> Void) rethrows {
        try body(AES256GCMCipher.self, "AES-256-GCM")
        try body(ChaCha20Poly1305Cipher.self, "ChaCha20-Poly1305")
    }

    func testRoundTripsInPlace() throws {
        try roundTrip(AES256GCMCipher.self)
        try roundTrip(ChaCha20Poly1305Cipher.self)
    }

    private func roundTrip<C: AEADSuiteCipher>(_ t: C.Type) throws {
        let sender = try keyed(t), receiver = try keyed(t)
        for length in Array(0...70) + [1400, C.Suite.maxPayloadLength] {
            let payload = CT.payload(length, seed: length)
            let packet = try CT.seal(sender, header(UInt64(length)), payload)
            XCTAssertEqual(packet.count, 48 + length)
            XCTAssertEqual(packet[Wire.offsetSuite], C.Suite.id)
            if length >= 16 {
                XCTAssertNotEqual(Array(packet[32..<48]), Array(payload[0..<16]), "payload in clear, \(length)")
            }
            let parsed = packet.withUnsafeBytes { Header.parse($0, suite: C.Suite.self) }
            XCTAssertEqual(try parsed.get(), header(UInt64(length)).with(suite: C.Suite.id))
            XCTAssertEqual(CT.open(receiver, packet), payload, "\(C.self) length \(length)")
            XCTAssertEqual(CT.open(sender, packet), payload, "\(C.self) same object, length \(length)")
        }
    }

    func testEveryFlippedBitIsRefused() throws {
        try flippedBits(AES256GCMCipher.self)
        try flippedBits(ChaCha20Poly1305Cipher.self)
    }

    /// Header (associated data), ciphertext and tag: any bit flipped fails
    /// the tag; truncations and extensions fail too.
    private func flippedBits<C: AEADSuiteCipher>(_ t: C.Type) throws {
        let sender = try keyed(t), receiver = try keyed(t)
        let payload = CT.payload(40)
        var packet = try CT.seal(sender, header(5), payload)
        XCTAssertEqual(packet.count, 88)
        for bit in 0..<(packet.count * 8) {
            packet[bit / 8] ^= 1 << UInt8(bit % 8)
            XCTAssertNil(CT.open(receiver, packet), "\(C.self): flipped bit \(bit) accepted")
            packet[bit / 8] ^= 1 << UInt8(bit % 8)
        }
        XCTAssertEqual(CT.open(receiver, packet), payload)
        for n in 0..<packet.count { XCTAssertNil(CT.open(receiver, Array(packet[0..<n])), "\(C.self): prefix \(n)") }
        XCTAssertNil(CT.open(receiver, packet + [0]))
        XCTAssertEqual(CT.open(receiver, packet), payload, "the receiver still works after refusals")
    }

    func testWrongKeysAreRefused() throws {
        try wrongKeys(AES256GCMCipher.self)
        try wrongKeys(ChaCha20Poly1305Cipher.self)
    }

    private func wrongKeys<C: AEADSuiteCipher>(_ t: C.Type) throws {
        let packet = try CT.seal(try keyed(t), header(7), CT.payload(64))
        XCTAssertNil(CT.open(try keyed(t, session: session + 1), packet))
        XCTAssertNil(CT.open(try keyed(t, psk: CT.psk(0x43)), packet))
        XCTAssertNotNil(CT.open(try keyed(t), packet))
        // The other AEAD suite under the same PSK and session has its own keys.
        if C.self == AES256GCMCipher.self {
            var copy = packet
            copy[Wire.offsetSuite] = ChaCha20Poly1305Suite.id
            XCTAssertNil(CT.open(try keyed(ChaCha20Poly1305Cipher.self), copy))
        }
    }

    func testCountersInSequenceWithRefusalsBetween() throws {
        try sequence(AES256GCMCipher.self)
        try sequence(ChaCha20Poly1305Cipher.self)
    }

    /// One context per direction serves datagram after datagram, and a
    /// refused one (a wrong tag, a header naming another counter, a
    /// truncation) leaves nothing behind for the next: ChaCha20-Poly1305
    /// sets each nonce on a context it does not re-initialise, so a
    /// message left half done would spoil the next one's tag.
    private func sequence<C: AEADSuiteCipher>(_ t: C.Type) throws {
        let sender = try keyed(t), receiver = try keyed(t)
        for i in 0..<60 {
            let counter = UInt64(i * 7919)
            let payload = CT.payload(i % 3 == 0 ? 0 : i * 23, seed: i)
            let packet = try CT.seal(sender, header(counter), payload)
            var badTag = packet
            badTag[badTag.count - 1] ^= 0x80
            XCTAssertNil(CT.open(receiver, badTag), "\(C.self) datagram \(i), tag")
            var otherCounter = packet
            otherCounter[Wire.offsetCounter + 7] ^= 1
            XCTAssertNil(CT.open(receiver, otherCounter), "\(C.self) datagram \(i), counter")
            XCTAssertNil(CT.open(receiver, Array(packet.dropLast())), "\(C.self) datagram \(i), truncated")
            XCTAssertEqual(CT.open(receiver, packet), payload, "\(C.self) datagram \(i)")
        }
    }

    func testDatagramIsTheOneShotEVPAEADWithSaltXORCounter() throws {
        try oneShot(AES256GCMCipher.self, algorithm: "AES-256-GCM")
        try oneShot(ChaCha20Poly1305Cipher.self, algorithm: "ChaCha20-Poly1305")
    }

    /// The nonce is computed here from the OKM independently (N_salt
    /// XOR 0^4 || counter BE), then one fresh EVP context seals.
    private func oneShot<C: AEADSuiteCipher>(_ t: C.Type, algorithm: String) throws {
        let deriver = try SessionKeyDeriver(psk: CT.psk())
        var okm = [UInt8](repeating: 0, count: 44)
        XCTAssertTrue(okm.withUnsafeMutableBytes {
            deriver.derive(session: session, suite: SuiteID(rawValue: C.Suite.id)!, into: $0)
        })
        let cipher = try keyed(t)
        for counter: UInt64 in [0, 1, 0xff, 1 << 32, 0x0102_0304_0506_0708, UInt64.max] {
            let payload = CT.payload(100, seed: Int(counter & 0x7f))
            let h = header(counter)
            let ours = try CT.seal(cipher, h, payload)
            var nonce = Array(okm[32..<44])
            for i in 0..<8 { nonce[4 + i] ^= UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64(i))) }
            let aad = Array(ours[0..<32])
            XCTAssertEqual(aad[0..<4], [2, C.Suite.id, 1, 0])
            let theirs = Self.evpSeal(algorithm, key: Array(okm[0..<32]), nonce: nonce, aad: aad, payload)
            XCTAssertEqual(CT.hex(ours[32...]), CT.hex(theirs), "\(algorithm) counter \(counter)")
        }
    }

    static func evpSeal(_ name: String, key: [UInt8], nonce: [UInt8], aad: [UInt8], _ plain: [UInt8]) -> [UInt8] {
        let ctx = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(ctx) }
        let cipher = EVP_CIPHER_fetch(nil, name, nil)!
        defer { EVP_CIPHER_free(cipher) }
        var outl: Int32 = 0
        precondition(EVP_EncryptInit_ex2(ctx, cipher, key, nonce, nil) == 1)
        precondition(EVP_EncryptUpdate(ctx, nil, &outl, aad, Int32(aad.count)) == 1)
        var out = [UInt8](repeating: 0, count: plain.count + 16)
        if !plain.isEmpty { precondition(EVP_EncryptUpdate(ctx, &out, &outl, plain, Int32(plain.count)) == 1) }
        var tail = [UInt8](repeating: 0, count: 16)
        precondition(EVP_EncryptFinal_ex(ctx, &tail, &outl) == 1)
        out.withUnsafeMutableBufferPointer {
            precondition(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, $0.baseAddress! + plain.count) == 1)
        }
        return out
    }

    func testDecryptOnlyAfterVerifyOnceForThatBuffer() throws {
        let c = try keyed(AES256GCMCipher.self)
        var p = try CT.seal(c, header(1), CT.payload(30))
        var other = p
        p.withUnsafeMutableBytes { b in
            XCTAssertNil(c.decrypt(b), "no length without a verified tag")
            XCTAssertTrue(c.verify(b))
            XCTAssertEqual(c.decrypt(b), 30)
            XCTAssertNil(c.decrypt(b), "once")
        }
        other.withUnsafeMutableBytes { b in
            XCTAssertTrue(c.verify(b))
            var third = [UInt8](repeating: 0, count: b.count)
            third.withUnsafeMutableBytes { XCTAssertNil(c.decrypt($0), "another buffer") }
        }
    }

    func testUnkeyedAndWrongLengthMaterialRefuse() throws {
        let c = try AES256GCMCipher(algorithms: alg)
        XCTAssertFalse(c.hasCipherKeys)
        XCTAssertThrowsError(try CT.seal(c, header(1), [1])) { XCTAssertEqual($0 as? CryptoError, .noKeys) }
        let packet = try CT.seal(try keyed(AES256GCMCipher.self), header(1), [0x45])
        XCTAssertNil(CT.open(c, packet))
        XCTAssertThrowsError(try [UInt8](repeating: 1, count: 43).withUnsafeBytes { try c.setKeys(material: $0) })
        XCTAssertFalse(c.hasCipherKeys)
        let k = try keyed(AES256GCMCipher.self)
        XCTAssertEqual(AES256GCMCipher.verifyKeyMaterialLength, 44)
        XCTAssertEqual(CT.open(k, packet), [0x45])
        k.unkey()
        XCTAssertFalse(k.hasCipherKeys)
        XCTAssertNil(CT.open(k, packet), "unkeyed: refuses")
        XCTAssertThrowsError(try CT.seal(k, header(2), [1])) { XCTAssertEqual($0 as? CryptoError, .noKeys) }
    }

    func testVerifyKeyOpensButDoesNotSeal() throws {
        try verifyKeyOnly(AES256GCMCipher.self)
        try verifyKeyOnly(ChaCha20Poly1305Cipher.self)
    }

    /// A receiver keys a session it has not seen with `setVerifyKey`: that
    /// opens (and decrypts) its datagrams, but keys no sealing context (one
    /// key setup per forged datagram, not two), so sealing refuses.
    private func verifyKeyOnly<C: AEADSuiteCipher>(_ t: C.Type) throws {
        let sender = try keyed(t)
        let packet = try CT.seal(sender, header(7), CT.payload(40))
        let receiver = try C(algorithms: alg)
        XCTAssertTrue(try SessionKeyDeriver(psk: CT.psk()).setVerifyKey(of: session, in: receiver))
        XCTAssertTrue(receiver.hasCipherKeys, "\(C.self): decrypt needs nothing more")
        XCTAssertEqual(CT.open(receiver, packet), CT.payload(40))
        XCTAssertThrowsError(try CT.seal(receiver, header(8), [0x45])) {
            XCTAssertEqual($0 as? CryptoError, .noKeys, "\(C.self): verify keys do not seal")
        }
        try SessionKeyDeriver(psk: CT.psk()).setKeys(of: session, in: receiver)
        XCTAssertEqual(try CT.seal(receiver, header(8), CT.payload(40)), try CT.seal(sender, header(8), CT.payload(40)))
    }

    func testPayloadLimits() throws {
        let c = try keyed(ChaCha20Poly1305Cipher.self)
        var buf = [UInt8](repeating: 0, count: 65535)
        try buf.withUnsafeMutableBytes { p in
            XCTAssertThrowsError(try c.seal(header: header(1), payloadLength: 65460, packet: p)) {
                XCTAssertEqual($0 as? CryptoError, .payloadTooLong(65460))
            }
            XCTAssertEqual(try c.seal(header: header(1), payloadLength: 65459, packet: p), 65507)
        }
        var small = [UInt8](repeating: 0, count: 48 + 99)
        try small.withUnsafeMutableBytes { p in
            XCTAssertThrowsError(try c.seal(header: header(1), payloadLength: 100, packet: p)) {
                XCTAssertEqual($0 as? CryptoError, .bufferTooSmall(needed: 148, available: 147))
            }
        }
    }
}

extension Header {
    func with(suite: UInt8) -> Header {
        var h = self
        h.suite = suite
        return h
    }
}
