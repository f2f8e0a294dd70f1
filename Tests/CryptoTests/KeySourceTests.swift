import Shared
import XCTest
@testable import squtun_crypto

/// Session keys come from a key source; the sealer and opener take any.
final class KeySourceTests: XCTestCase {
    let alg = try! CryptoAlgorithms()

    /// A second key source, as a public-key setup would be: here the material
    /// is the EVP HKDF reference (`SessionKeys`), computed per call.
    final class ReferenceKeys: SessionKeySource {
        let psk: SecretBytes
        let alg: CryptoAlgorithms
        var calls = 0
        init(psk: SecretBytes, alg: CryptoAlgorithms) { self.psk = psk; self.alg = alg }
        func withKeyMaterial<R>(of session: UInt64, suite: UInt8, length: Int,
                                _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
            calls += 1
            guard suite == PacketCipher.Suite.id else { return nil }  // SessionKeys: the default suite's
            guard let keys = try? SessionKeys(algorithms: alg, psk: psk, session: session) else { return nil }
            var all = [UInt8]()
            for k in [keys.enc, keys.mac, keys.iv] { k.withUnsafeBytes { all += $0 } }
            defer { for i in all.indices { all[i] = 0 } }
            return try all.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        }
    }

    func testPSKMaterialIsTheHKDFOutputAndPrefixes() throws {
        let deriver = try SessionKeyDeriver(psk: CT.psk())
        let keys = try SessionKeys(algorithms: alg, psk: CT.psk(), session: 77)
        let okm = CT.hex(keys.enc) + CT.hex(keys.mac) + CT.hex(keys.iv)
        for length in [0, 32, 64, 96] {
            let got = deriver.withKeyMaterial(of: 77, suite: 1, length: length) { CT.hex($0) }
            XCTAssertEqual(got, String(okm.prefix(2 * length)), "length \(length)")
        }
        XCTAssertNil(deriver.withKeyMaterial(of: 77, suite: 1, length: 97) { _ in true })
        XCTAssertEqual(PacketCipher.keyMaterialLength, 96)
        XCTAssertEqual(PacketCipher.verifyKeyMaterialLength, 64)
    }

    /// The same datagram bytes whichever way the keys came.
    func testSealerKeysFromAnySourceSealTheSameBytes() throws {
        let payload = CT.payload(300)
        func sealed(_ s: Sealer) throws -> [UInt8] {
            var buf = [UInt8](repeating: 0, count: Wire.packetLength(payload: payload.count))
            _ = try buf.withUnsafeMutableBytes { p -> Int in
                (p.baseAddress! + Wire.offsetCiphertext).copyMemory(from: payload, byteCount: payload.count)
                return try s.seal(type: .data, payloadLength: payload.count, packet: p, nowMs: 1234)
            }
            return buf
        }
        let a = try sealed(Sealer(algorithms: alg, psk: CT.psk(), session: 5))
        let b = try sealed(Sealer(algorithms: alg, keySource: SessionKeyDeriver(psk: CT.psk()), session: 5))
        let c = try sealed(Sealer(algorithms: alg, keySource: ReferenceKeys(psk: CT.psk(), alg: alg), session: 5))
        let reference = try CT.seal(CT.cipher(alg, psk: CT.psk(), session: 5),
                                    Header(type: .data, session: 5, counter: 0, timestampMs: 1234), payload)
        XCTAssertEqual(a, reference)
        XCTAssertEqual(b, reference)
        XCTAssertEqual(c, reference)
    }

    /// An opener over another key source runs every check the same way; the
    /// source is asked once for the MAC key and once for all keys of a new session.
    func testOpenerTakesAnotherKeySource() throws {
        let source = ReferenceKeys(psk: CT.psk(), alg: alg)
        let opener = try SuiteOpener<PacketCipher, ReferenceKeys>(
            algorithms: alg, keySource: source, ownSession: 1, startMs: 0, skewSeconds: 0)
        let cipher = try CT.cipher(alg, psk: CT.psk(), session: 9)
        for counter: UInt64 in 0..<3 {
            var d = try CT.seal(cipher, Header(type: .data, session: 9, counter: counter, timestampMs: 0),
                                [0x45] + CT.payload(40))
            XCTAssertEqual(d.withUnsafeMutableBytes { opener.open($0, fromPeer: true, nowMs: 0, monotonicMs: 0) },
                           .data(length: 41))
        }
        XCTAssertEqual(source.calls, 2)
        XCTAssertEqual(opener.peerSession, 9)
        let forged = try CT.seal(CT.cipher(alg, psk: CT.psk(0x99), session: 10),
                                 Header(type: .data, session: 10, counter: 0, timestampMs: 0), [0x45])
        var f = forged
        XCTAssertEqual(f.withUnsafeMutableBytes { opener.open($0, fromPeer: true, nowMs: 0, monotonicMs: 0) },
                       .drop(.badMAC))
        XCTAssertEqual(opener.peerSession, 9)
    }
}
