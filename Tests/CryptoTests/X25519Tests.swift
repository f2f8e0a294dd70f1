import Shared
import XCTest
@testable import squtun_crypto

/// X25519 against RFC 7748, and the keypair setup's tunnel key T against a
/// fixed vector. The T vectors were computed once, independently of this
/// code, with Python's `cryptography` package (X25519PrivateKey.exchange and
/// its HKDF), from RFC 7748 §6.1's two keys:
///
///     z  = A.exchange(B.public)                      # = the RFC's K
///     lo, hi = sorted([A.public, B.public])
///     T  = HKDF(SHA256, 32, b"squtun v2 keypair", b"squtun v2 tunnel key" + lo + hi).derive(z + psk)
///
/// with psk = 32 zero bytes (no PSK) and psk = bytes 00 01 .. 1f.
final class X25519Tests: XCTestCase {
    // RFC 7748 §6.1.
    static let alicePrivate = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    static let alicePublic = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    static let bobPrivate = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
    static let bobPublic = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    static let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    static let tNoPSK = "71ce5c12ff96e13221bd80c7697e627c777e2dd520d3b843368d961278fc29c4"
    static let tWithPSK = "644e3398517d182e95fead0435c82dfb67b3905a55df66659548679aaecfdfbb"

    static func secret(_ hex: String) -> SecretBytes { CT.bytes(hex).withUnsafeBytes { SecretBytes(copying: $0) } }

    func testRFC7748PublicKeys() throws {
        XCTAssertEqual(CT.hex(try X25519.publicKey(of: Self.secret(Self.alicePrivate))), Self.alicePublic)
        XCTAssertEqual(CT.hex(try X25519.publicKey(of: Self.secret(Self.bobPrivate))), Self.bobPublic)
    }

    func testRFC7748SharedSecretBothWays() throws {
        let ab = try X25519.sharedSecret(privateKey: Self.secret(Self.alicePrivate), peerPublic: CT.bytes(Self.bobPublic))
        let ba = try X25519.sharedSecret(privateKey: Self.secret(Self.bobPrivate), peerPublic: CT.bytes(Self.alicePublic))
        XCTAssertEqual(CT.hex(ab), Self.shared)
        XCTAssertEqual(CT.hex(ba), Self.shared)
    }

    /// RFC 7748 §5.2's first function vector: scalar and u-coordinate in,
    /// result out (the scalar unclamped: X25519 clamps it).
    func testRFC7748FunctionVector() throws {
        let k = Self.secret("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
        let u = CT.bytes("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
        XCTAssertEqual(CT.hex(try X25519.sharedSecret(privateKey: k, peerPublic: u)),
                       "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    }

    /// Points of small order force an all-zero result whatever the private
    /// key: each is refused with its own error.
    func testLowOrderPeerKeysAreRefused() throws {
        let lowOrder = [
            String(repeating: "00", count: 32),
            "01" + String(repeating: "00", count: 31),
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        ]
        for point in lowOrder {
            XCTAssertThrowsError(try X25519.sharedSecret(privateKey: Self.secret(Self.alicePrivate),
                                                          peerPublic: CT.bytes(point)), point) { error in
                XCTAssertEqual(error as? CryptoError, .lowOrderPeerKey, point)
            }
        }
        XCTAssertTrue(CryptoError.lowOrderPeerKey.description.contains("low-order"))
    }

    func testGeneratedKeysAgree() throws {
        let a = try X25519.generatePrivateKey(), b = try X25519.generatePrivateKey()
        XCTAssertFalse(a.constantTimeEquals(b))
        let ab = try X25519.sharedSecret(privateKey: a, peerPublic: X25519.publicKey(of: b))
        let ba = try X25519.sharedSecret(privateKey: b, peerPublic: X25519.publicKey(of: a))
        XCTAssertTrue(ab.constantTimeEquals(ba))
    }

    func testTunnelKeyVectorWithoutPSK() throws {
        let alg = try CryptoAlgorithms()
        let ta = try TunnelKey.derive(privateKey: Self.secret(Self.alicePrivate), peerPublic: CT.bytes(Self.bobPublic),
                                      psk: nil, algorithms: alg)
        let tb = try TunnelKey.derive(privateKey: Self.secret(Self.bobPrivate), peerPublic: CT.bytes(Self.alicePublic),
                                      psk: nil, algorithms: alg)
        XCTAssertEqual(CT.hex(ta), Self.tNoPSK)
        XCTAssertEqual(CT.hex(tb), Self.tNoPSK, "both ends derive the same T (sorted public keys)")
    }

    func testTunnelKeyVectorWithPSK() throws {
        let alg = try CryptoAlgorithms()
        let psk = CT.bytes(CT.hex((0..<32).map { UInt8($0) }))
        let t = try TunnelKey.derive(privateKey: Self.secret(Self.alicePrivate), peerPublic: CT.bytes(Self.bobPublic),
                                     psk: psk.withUnsafeBytes { SecretBytes(copying: $0) }, algorithms: alg)
        XCTAssertEqual(CT.hex(t), Self.tWithPSK)
        // An all-zero PSK is the same as none (the design's IKM for "no PSK").
        let zero = try TunnelKey.derive(privateKey: Self.secret(Self.alicePrivate), peerPublic: CT.bytes(Self.bobPublic),
                                        psk: SecretBytes(count: 32), algorithms: alg)
        XCTAssertEqual(CT.hex(zero), Self.tNoPSK)
    }

    func testTunnelKeyRefusesOwnPublicKeyAndLowOrder() throws {
        let alg = try CryptoAlgorithms()
        XCTAssertThrowsError(try TunnelKey.derive(privateKey: Self.secret(Self.alicePrivate),
                                                  peerPublic: CT.bytes(Self.alicePublic), psk: nil, algorithms: alg)) {
            XCTAssertEqual($0 as? CryptoError, .peerKeyIsOwn)
        }
        XCTAssertThrowsError(try TunnelKey.derive(privateKey: Self.secret(Self.alicePrivate),
                                                  peerPublic: [UInt8](repeating: 0, count: 32), psk: nil, algorithms: alg)) {
            XCTAssertEqual($0 as? CryptoError, .lowOrderPeerKey)
        }
        XCTAssertNotEqual(CryptoError.peerKeyIsOwn.description, CryptoError.lowOrderPeerKey.description)
    }
}
