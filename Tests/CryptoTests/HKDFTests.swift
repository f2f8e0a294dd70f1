import Shared
import XCTest
@testable import squtun_crypto

final class HKDFTests: XCTestCase {
    func hkdf(_ alg: CryptoAlgorithms, salt: String, ikm: String, info: String, length: Int) throws -> String {
        var out = [UInt8](repeating: 0, count: length)
        let s = CT.bytes(salt), k = CT.bytes(ikm), i = CT.bytes(info)
        try s.withUnsafeBytes { sp in
            try k.withUnsafeBytes { kp in
                try i.withUnsafeBytes { ip in
                    try out.withUnsafeMutableBytes { try alg.hkdfSHA256(salt: sp, ikm: kp, info: ip, into: $0) }
                }
            }
        }
        return CT.hex(out)
    }

    func testRFC5869Case1() throws {
        let alg = try CryptoAlgorithms()
        XCTAssertEqual(
            try hkdf(alg, salt: "000102030405060708090a0b0c", ikm: String(repeating: "0b", count: 22),
                     info: "f0f1f2f3f4f5f6f7f8f9", length: 42),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    func testRFC5869Case2LongInputs() throws {
        let alg = try CryptoAlgorithms()
        let range = { (a: Int, b: Int) in CT.hex((a...b).map { UInt8($0) }) }
        XCTAssertEqual(
            try hkdf(alg, salt: range(0x60, 0xaf), ikm: range(0x00, 0x4f), info: range(0xb0, 0xff), length: 82),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                + "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                + "cc30c58179ec3e87c14c01d5c1f3434f1d87")
    }

    func testRFC5869Case3EmptySaltAndInfo() throws {
        let alg = try CryptoAlgorithms()
        XCTAssertEqual(
            try hkdf(alg, salt: "", ikm: String(repeating: "0b", count: 22), info: "", length: 42),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    func testHKDFRejectsEmptyKeyAndOverlongOutput() throws {
        let alg = try CryptoAlgorithms()
        XCTAssertThrowsError(try hkdf(alg, salt: "00", ikm: "", info: "", length: 32))
        XCTAssertThrowsError(try hkdf(alg, salt: "00", ikm: "0b", info: "", length: 255 * 32 + 1))
    }

    /// SessionKeys is HKDF(salt, psk, prefix || suite 1 || session BE) split 32/32/32.
    func testSessionKeysAreTheHKDFOutputSplit() throws {
        let alg = try CryptoAlgorithms()
        let psk = CT.psk()
        let session: UInt64 = 0x0102_0304_0506_0708
        let okm = try hkdf(alg, salt: CT.hex(Wire.hkdfSalt), ikm: CT.hex(psk),
                           info: CT.hex(Wire.hkdfInfoPrefix) + "01" + "0102030405060708", length: 96)
        let keys = try SessionKeys(algorithms: alg, psk: psk, session: session)
        XCTAssertEqual(CT.hex(keys.enc) + CT.hex(keys.mac) + CT.hex(keys.iv), okm)
        XCTAssertEqual(keys.session, session)
    }

    func testDifferentSessionsAndPSKsGiveDifferentKeys() throws {
        let alg = try CryptoAlgorithms()
        let a = try SessionKeys(algorithms: alg, psk: CT.psk(), session: 1)
        let b = try SessionKeys(algorithms: alg, psk: CT.psk(), session: 2)
        let c = try SessionKeys(algorithms: alg, psk: CT.psk(0x43), session: 1)
        let a2 = try SessionKeys(algorithms: alg, psk: CT.psk(), session: 1)
        for (x, y) in [(a, b), (a, c), (b, c)] {
            XCTAssertNotEqual(CT.hex(x.enc), CT.hex(y.enc))
            XCTAssertNotEqual(CT.hex(x.mac), CT.hex(y.mac))
            XCTAssertNotEqual(CT.hex(x.iv), CT.hex(y.iv))
        }
        XCTAssertTrue(a.enc.constantTimeEquals(a2.enc))
        XCTAssertTrue(a.mac.constantTimeEquals(a2.mac))
        XCTAssertTrue(a.iv.constantTimeEquals(a2.iv))
        // The three keys of one session differ from each other.
        XCTAssertNotEqual(CT.hex(a.enc), CT.hex(a.mac))
        XCTAssertNotEqual(CT.hex(a.mac), CT.hex(a.iv))
    }

    func testRederiveRefillsTheSameBuffers() throws {
        let alg = try CryptoAlgorithms()
        let keys = try SessionKeys(algorithms: alg, psk: CT.psk(), session: 7)
        let enc = keys.enc, mac = keys.mac, iv = keys.iv
        let address = enc.withUnsafeBytes { $0.baseAddress }
        try keys.rederive(psk: CT.psk(), session: 8)
        XCTAssertTrue(keys.enc === enc && keys.mac === mac && keys.iv === iv)
        XCTAssertEqual(keys.enc.withUnsafeBytes { $0.baseAddress }, address)
        XCTAssertEqual(keys.session, 8)
        let fresh = try SessionKeys(algorithms: alg, psk: CT.psk(), session: 8)
        XCTAssertEqual(CT.hex(keys.enc) + CT.hex(keys.mac) + CT.hex(keys.iv),
                       CT.hex(fresh.enc) + CT.hex(fresh.mac) + CT.hex(fresh.iv))
    }

    func testWrongPSKLengthThrowsAndWipes() throws {
        let alg = try CryptoAlgorithms()
        let keys = try SessionKeys(algorithms: alg, psk: CT.psk(), session: 7)
        XCTAssertFalse(CT.isZero(keys.enc))
        let short = SecretBytes(count: 16)
        XCTAssertThrowsError(try keys.rederive(psk: short, session: 9)) { e in
            XCTAssertEqual(e as? CryptoError, .keyLength(what: "PSK", expected: 32, actual: 16))
        }
        XCTAssertTrue(CT.isZero(keys.enc) && CT.isZero(keys.mac) && CT.isZero(keys.iv))
        XCTAssertThrowsError(try SessionKeys(algorithms: alg, psk: SecretBytes(count: 33), session: 1))
    }

    func testWipeZeroesEveryKey() throws {
        let alg = try CryptoAlgorithms()
        let keys = try SessionKeys(algorithms: alg, psk: CT.psk(), session: 3)
        XCTAssertFalse(CT.isZero(keys.enc))
        XCTAssertFalse(CT.isZero(keys.mac))
        XCTAssertFalse(CT.isZero(keys.iv))
        keys.wipe()
        XCTAssertTrue(CT.isZero(keys.enc))
        XCTAssertTrue(CT.isZero(keys.mac))
        XCTAssertTrue(CT.isZero(keys.iv))
    }

    func testSecretBytesWipeOnLiveObject() {
        let s = [UInt8](repeating: 0xa5, count: 32).withUnsafeBytes { SecretBytes(copying: $0) }
        XCTAssertFalse(CT.isZero(s))
        s.wipe()
        XCTAssertTrue(CT.isZero(s))
        XCTAssertEqual(s.count, 32)
    }
}
