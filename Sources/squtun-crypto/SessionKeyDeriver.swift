import COpenSSL
import Shared

/// The key source of a pre-shared key (PROTOCOL.md §3): a session's key
/// material is HKDF-SHA256 of the PSK (or a keypair's tunnel key, the same
/// 32 bytes for this purpose) with the suite byte and the session
/// identifier, from an `HKDFSHA256` whose PRK is extracted once.
/// Used for sessions named by datagrams, which anyone can send, so a prefix
/// costs only its own blocks: `setVerifyKey` computes only T(1) and T(2):
/// CBC's K_mac is OKM[32..64) = T(2) (five SHA-256 compressions, plus two
/// for the HMAC key states), and only a datagram whose MAC then passes pays
/// for `setKeys` (all of the OKM, and the AES key schedules); an AEAD's 44
/// bytes are T(1) and the start of T(2), all of its material, as cheap.
/// Allocation-free; the OKM is wiped after each call.
public final class SessionKeyDeriver: SessionKeySource {
    private let hkdf: HKDFSHA256
    /// [0..<96] OKM, [96..<127] info = prefix ‖ suite ‖ session.
    private let scratch: UnsafeMutableRawBufferPointer
    private static let infoOffset = Wire.maxDerivedLength
    private static let suiteOffset = infoOffset + Wire.hkdfInfoPrefix.count
    private static let sessionOffset = suiteOffset + 1

    public init(psk: SecretBytes) throws {
        guard psk.count == Wire.pskLength else {
            throw CryptoError.keyLength(what: "PSK", expected: Wire.pskLength, actual: psk.count)
        }
        hkdf = try Wire.hkdfSalt.withUnsafeBytes { salt in
            try psk.withUnsafeBytes { try HKDFSHA256(salt: salt, ikm: $0) }
        }
        let infoLength = Wire.hkdfInfoPrefix.count + Wire.hkdfInfoSuffixLength
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

    /// OKM[0 ..< length] of `session` and `suite` into the scratch; false on failure (scratch wiped).
    private func derive(_ session: UInt64, suite: UInt8, length: Int) -> Bool {
        scratch[Self.suiteOffset] = suite
        scratch.storeBigEndian(session, at: Self.sessionOffset)
        let info = UnsafeRawBufferPointer(rebasing: scratch[Self.infoOffset...])
        return hkdf.expand(info: info, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<length]))
    }

    public func withKeyMaterial<R>(of session: UInt64, suite: UInt8, length: Int,
                                   _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        defer { OPENSSL_cleanse(scratch.baseAddress, Wire.maxDerivedLength) }
        guard length >= 0, length <= Wire.maxDerivedLength, derive(session, suite: suite, length: length) else {
            return nil
        }
        return try body(UnsafeRawBufferPointer(rebasing: scratch[0..<length]))
    }

    /// The OKM of `session` for `suite` (its length: `out.count`, at most
    /// 96) (for tests; the daemon keys ciphers directly).
    public func derive(session: UInt64, suite: SuiteID = .defaultSuite, into out: UnsafeMutableRawBufferPointer) -> Bool {
        defer { OPENSSL_cleanse(scratch.baseAddress, Wire.maxDerivedLength) }
        guard out.count == suite.layout.keyMaterialLength,
              derive(session, suite: suite.rawValue, length: out.count) else { return false }
        out.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[0..<out.count]))
        return true
    }
}
