import COpenSSL
import Shared

/// The key source of a pre-shared key (PROTOCOL.md §3): a session's key
/// material is HKDF-SHA256 of the PSK with the session identifier, the same
/// OKM as `SessionKeys`, from an `HKDFSHA256` whose PRK is extracted once.
/// Used for sessions named by datagrams, which anyone can send, so a prefix
/// costs only its own blocks: `setVerifyKey` computes only T(1) and T(2)
/// (K_mac = OKM[32..64) = T(2)): five SHA-256 compressions, plus two for
/// the HMAC key states. Only a datagram whose MAC then passes pays for
/// `setKeys` (all of the OKM, and the AES key schedules).
/// Allocation-free; the OKM is wiped after each call.
public final class SessionKeyDeriver: SessionKeySource {
    private let hkdf: HKDFSHA256
    /// [0..<96] OKM, [96..<126] info = prefix ‖ session.
    private let scratch: UnsafeMutableRawBufferPointer
    private static let infoOffset = Wire.derivedLength

    public init(psk: SecretBytes) throws {
        guard psk.count == Wire.pskLength else {
            throw CryptoError.keyLength(what: "PSK", expected: Wire.pskLength, actual: psk.count)
        }
        hkdf = try Wire.hkdfSalt.withUnsafeBytes { salt in
            try psk.withUnsafeBytes { try HKDFSHA256(salt: salt, ikm: $0) }
        }
        let infoLength = Wire.hkdfInfoPrefix.count + 8
        scratch = .allocate(byteCount: Self.infoOffset + infoLength, alignment: 16)
        scratch.initializeMemory(as: UInt8.self, repeating: 0)
        Wire.hkdfInfoPrefix.withUnsafeBytes {
            UnsafeMutableRawBufferPointer(rebasing: scratch[Self.infoOffset..<Self.infoOffset + $0.count])
                .copyMemory(from: $0)
        }
    }

    deinit {
        cleanse(scratch)
        scratch.deallocate()
    }

    /// OKM[0 ..< length] of `session` into the scratch; false on failure (scratch wiped).
    private func derive(_ session: UInt64, length: Int) -> Bool {
        scratch.storeBigEndian(session, at: Self.infoOffset + Wire.hkdfInfoPrefix.count)
        let info = UnsafeRawBufferPointer(rebasing: scratch[Self.infoOffset...])
        return hkdf.expand(info: info, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<length]))
    }

    public func withKeyMaterial<R>(of session: UInt64, length: Int,
                                   _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        defer { OPENSSL_cleanse(scratch.baseAddress, Wire.derivedLength) }
        guard length >= 0, length <= Wire.derivedLength, derive(session, length: length) else { return nil }
        return try body(UnsafeRawBufferPointer(rebasing: scratch[0..<length]))
    }

    /// The 96-byte OKM of `session` (for tests; the daemon keys ciphers directly).
    public func derive(session: UInt64, into out: UnsafeMutableRawBufferPointer) -> Bool {
        defer { OPENSSL_cleanse(scratch.baseAddress, Wire.derivedLength) }
        guard out.count == Wire.derivedLength, derive(session, length: Wire.derivedLength) else { return false }
        out.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[0..<Wire.derivedLength]))
        return true
    }
}
