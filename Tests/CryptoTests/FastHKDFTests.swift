import Shared
import XCTest
@testable import squtun_crypto

/// HKDFSHA256 (PRK extracted once, SHA256_* only) and SessionKeyDeriver
/// against RFC 5869's vectors and against the EVP_KDF reference
/// (CryptoAlgorithms.hkdfSHA256, SessionKeys).
final class FastHKDFTests: XCTestCase {
    func fast(salt: [UInt8], ikm: [UInt8], info: [UInt8], length: Int) throws -> [UInt8] {
        let h = try salt.withUnsafeBytes { s in try ikm.withUnsafeBytes { try HKDFSHA256(salt: s, ikm: $0) } }
        var out = [UInt8](repeating: 0xee, count: length)
        let ok = info.withUnsafeBytes { i in out.withUnsafeMutableBytes { h.expand(info: i, into: $0) } }
        XCTAssertTrue(ok)
        return out
    }

    func reference(_ alg: CryptoAlgorithms, salt: [UInt8], ikm: [UInt8], info: [UInt8], length: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        try salt.withUnsafeBytes { s in
            try ikm.withUnsafeBytes { k in
                try info.withUnsafeBytes { i in
                    try out.withUnsafeMutableBytes { try alg.hkdfSHA256(salt: s, ikm: k, info: i, into: $0) }
                }
            }
        }
        return out
    }

    func testRFC5869Vectors() throws {
        let range = { (a: Int, b: Int) in (a...b).map { UInt8($0) } }
        XCTAssertEqual(
            CT.hex(try fast(salt: CT.bytes("000102030405060708090a0b0c"), ikm: [UInt8](repeating: 0x0b, count: 22),
                            info: CT.bytes("f0f1f2f3f4f5f6f7f8f9"), length: 42)),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        // Case 2: an 80-byte salt is an HMAC key longer than a block (hashed first).
        XCTAssertEqual(
            CT.hex(try fast(salt: range(0x60, 0xaf), ikm: range(0x00, 0x4f), info: range(0xb0, 0xff), length: 82)),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                + "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                + "cc30c58179ec3e87c14c01d5c1f3434f1d87")
        XCTAssertEqual(
            CT.hex(try fast(salt: [], ikm: [UInt8](repeating: 0x0b, count: 22), info: [], length: 42)),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    /// Every length class of salt (none, short, a block, longer), IKM, info
    /// (spilling T(i-1) ‖ info ‖ i over one, two, three blocks) and output.
    func testAgreesWithEVPKDF() throws {
        let alg = try CryptoAlgorithms()
        var rng = SystemRandomNumberGenerator()
        func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        for saltLength in [0, 1, 18, 32, 63, 64, 65, 200] {
            for infoLength in [0, 1, 30, 31, 32, 55, 56, 64, 100, 150] {
                for length in [1, 31, 32, 33, 64, 96, 97, 255 * 32] {
                    let salt = random(saltLength), ikm = random(1 + (saltLength * 7 + infoLength) % 90)
                    let info = random(infoLength)
                    XCTAssertEqual(try fast(salt: salt, ikm: ikm, info: info, length: length),
                                   try reference(alg, salt: salt, ikm: ikm, info: info, length: length),
                                   "salt \(saltLength) ikm \(ikm.count) info \(infoLength) L \(length)")
                }
            }
        }
    }

    func testRefusesEmptyIKMAndOverlongOutput() throws {
        XCTAssertThrowsError(try fast(salt: [1], ikm: [], info: [], length: 32))
        let h = try [UInt8](repeating: 1, count: 4).withUnsafeBytes { try HKDFSHA256(salt: $0, ikm: $0) }
        var out = [UInt8](repeating: 0, count: 255 * 32 + 1)
        XCTAssertFalse(out.withUnsafeMutableBytes { h.expand(info: UnsafeRawBufferPointer(start: nil, count: 0), into: $0) })
    }

    /// The receiver's derivation equals SessionKeys (EVP_KDF) for many sessions.
    func testDeriverMatchesSessionKeys() throws {
        let alg = try CryptoAlgorithms()
        for seed: UInt8 in [0x42, 0x17] {
            let psk = CT.psk(seed)
            let deriver = try SessionKeyDeriver(psk: psk)
            var sessions: [UInt64] = [0, 1, 0x0102_0304_0506_0708, .max, 1_795_000_000_000_000_000]
            for _ in 0..<200 { sessions.append(UInt64.random(in: 0 ... .max)) }
            for s in sessions {
                var okm = [UInt8](repeating: 0, count: Wire.derivedLength)
                XCTAssertTrue(okm.withUnsafeMutableBytes { deriver.derive(session: s, into: $0) })
                let keys = try SessionKeys(algorithms: alg, psk: psk, session: s)
                XCTAssertEqual(CT.hex(okm), CT.hex(keys.enc) + CT.hex(keys.mac) + CT.hex(keys.iv), "session \(s)")
            }
        }
        XCTAssertThrowsError(try SessionKeyDeriver(psk: SecretBytes(count: 31)))
    }

    /// MAC-only keying verifies the session's datagrams (and no other's) but
    /// cannot decrypt or seal until the full keys are set; then the cipher
    /// behaves as one keyed from SessionKeys.
    func testMACKeyFirstThenFullKeys() throws {
        let alg = try CryptoAlgorithms()
        let psk = CT.psk()
        let session: UInt64 = 1_795_000_000_123_456_789
        let sender = try CT.cipher(alg, psk: psk, session: session)
        let other = try CT.cipher(alg, psk: psk, session: session + 1)
        let payload = CT.payload(100)
        let header = Header(type: .data, session: session, counter: 5, timestampMs: 9)
        let packet = try CT.seal(sender, header, payload)
        let forged = try CT.seal(other, header, payload)

        let deriver = try SessionKeyDeriver(psk: psk)
        let c = try PacketCipher(algorithms: alg)
        XCTAssertTrue(deriver.setVerifyKey(of: session, in: c))
        XCTAssertFalse(c.hasCipherKeys)
        XCTAssertTrue(CT.verify(c, packet))
        XCTAssertFalse(CT.verify(c, forged))
        var p = packet
        XCTAssertNil(p.withUnsafeMutableBytes { c.decrypt($0) })
        XCTAssertThrowsError(try CT.seal(c, header, payload)) { XCTAssertEqual($0 as? CryptoError, .noKeys) }

        try deriver.setKeys(of: session, in: c)
        XCTAssertTrue(c.hasCipherKeys)
        XCTAssertEqual(CT.open(c, packet), payload)
        XCTAssertEqual(try CT.seal(c, header, payload), packet)

        // Re-keying for another session's MAC drops the cipher keys again.
        XCTAssertTrue(deriver.setVerifyKey(of: session + 1, in: c))
        XCTAssertFalse(c.hasCipherKeys)
        XCTAssertFalse(CT.verify(c, packet))
        XCTAssertTrue(CT.verify(c, forged))
    }
}
