import COpenSSL
import Foundation
import Shared
import XCTest
@testable import squtun_crypto

/// Helpers shared by the crypto tests (namespaced to stay clear of other test files).
enum CT {
    static func bytes(_ hex: String) -> [UInt8] {
        let h = Array(hex.utf8)
        precondition(h.count % 2 == 0, "odd hex length")
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: preconditionFailure("not hex: \(c)")
            }
        }
        return stride(from: 0, to: h.count, by: 2).map { nibble(h[$0]) << 4 | nibble(h[$0 + 1]) }
    }

    static func hex<S: Sequence>(_ b: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for x in b { out.append(digits[Int(x >> 4)]); out.append(digits[Int(x & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func hex(_ s: SecretBytes) -> String { s.withUnsafeBytes { hex($0) } }

    static func psk(_ seed: UInt8 = 0x42) -> SecretBytes {
        let raw = (0..<32).map { UInt8(truncatingIfNeeded: Int(seed) &* 7 &+ $0 &* 13) }
        return raw.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    static func payload(_ length: Int, seed: Int = 1) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ seed &+ ($0 >> 8)) }
    }

    static func isZero(_ s: SecretBytes) -> Bool { s.withUnsafeBytes { $0.allSatisfy { $0 == 0 } } }

    /// A keyed cipher for `session` under `psk`.
    static func cipher(_ alg: CryptoAlgorithms, psk: SecretBytes, session: UInt64) throws -> PacketCipher {
        let c = try PacketCipher(algorithms: alg)
        try c.setKeys(SessionKeys(algorithms: alg, psk: psk, session: session))
        return c
    }

    /// Seals `payload` into a buffer of exactly the datagram's length.
    static func seal<C: SuiteCipher>(_ c: C, _ header: Header, _ payload: [UInt8]) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: C.Suite.packetLength(payload: payload.count))
        let n = try buf.withUnsafeMutableBytes { p -> Int in
            p.baseAddress!.advanced(by: C.Suite.payloadStart).copyMemory(from: payload, byteCount: payload.count)
            return try c.seal(header: header, payloadLength: payload.count, packet: p)
        }
        XCTAssertEqual(n, buf.count)
        return buf
    }

    static func verify(_ c: PacketCipher, _ packet: [UInt8]) -> Bool {
        packet.withUnsafeBytes { c.verify($0) }
    }

    /// verify + decrypt a copy; the payload or nil.
    static func open<C: SuiteCipher>(_ c: C, _ packet: [UInt8]) -> [UInt8]? {
        var p = packet
        return p.withUnsafeMutableBytes { b -> [UInt8]? in
            guard c.verify(b), let n = c.decrypt(b) else { return nil }
            return Array(b[C.Suite.payloadStart..<(C.Suite.payloadStart + n)])
        }
    }

    // One-shot OpenSSL primitives with fresh contexts, independent of
    // PacketCipher's reused contexts: used to build packets by hand.

    static func aes(_ name: String, key: SecretBytes, iv: [UInt8]?, _ data: [UInt8]) -> [UInt8] {
        let ctx = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(ctx) }
        let cipher = EVP_CIPHER_fetch(nil, name, nil)!
        defer { EVP_CIPHER_free(cipher) }
        var out = [UInt8](repeating: 0, count: data.count + 16)
        var outl: Int32 = 0
        key.withUnsafeBytes { k in
            let ivp = iv
            precondition(EVP_EncryptInit_ex(ctx, cipher, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), ivp) == 1)
        }
        precondition(EVP_CIPHER_CTX_set_padding(ctx, 0) == 1)
        precondition(EVP_EncryptUpdate(ctx, &out, &outl, data, Int32(data.count)) == 1)
        precondition(Int(outl) == data.count)
        return Array(out[0..<data.count])
    }

    static func hmacSHA256(key: SecretBytes, _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var outl = 0
        key.withUnsafeBytes { k in
            precondition(EVP_Q_mac(nil, "HMAC", nil, "SHA256", nil, k.baseAddress, k.count,
                                   data, data.count, &out, out.count, &outl) != nil)
        }
        precondition(outl == 32)
        return out
    }

    /// A datagram built from primitives: header || IV || CBC(plaintext as given, no padding added) || MAC.
    static func handmade(keys: SessionKeys, header: Header, plaintext: [UInt8]) -> [UInt8] {
        precondition(plaintext.count % 16 == 0 && !plaintext.isEmpty)
        var head = [UInt8](repeating: 0, count: Wire.headerLength)
        head.withUnsafeMutableBytes { header.write(to: $0) }
        let iv = aes("AES-256-ECB", key: keys.iv, iv: nil, ivInput(header.session, header.counter))
        let body = head + iv + aes("AES-256-CBC", key: keys.enc, iv: iv, plaintext)
        return body + hmacSHA256(key: keys.mac, body)
    }

    static func ivInput(_ session: UInt64, _ counter: UInt64) -> [UInt8] {
        withUnsafeBytes(of: session.bigEndian) { Array($0) } + withUnsafeBytes(of: counter.bigEndian) { Array($0) }
    }
}
