import COpenSSL
import Shared

/// The keys of one sender session: HKDF-SHA256(salt: `Wire.hkdfSalt`,
/// IKM: PSK, info: `Wire.hkdfInfoPrefix` || suite 1 || session (8 bytes BE), L = 96)
/// split into K_enc || K_mac || K_iv. Each buffer is a `SecretBytes`
/// (wiped on deinit). The keys of the default suite (AES-256-CBC + HMAC-SHA256). A side derives its send keys from its own session id
/// and its receive keys from the peer's.
public final class SessionKeys {
    /// AES-256-CBC key, OKM[0..<32].
    public let enc = SecretBytes(count: Wire.keyLength)
    /// HMAC-SHA256 key, OKM[32..<64].
    public let mac = SecretBytes(count: Wire.keyLength)
    /// AES-256-ECB key for IV generation, OKM[64..<96].
    public let iv = SecretBytes(count: Wire.keyLength)
    /// The session id the keys were derived for.
    public private(set) var session: UInt64

    private let algorithms: CryptoAlgorithms

    /// Derives the keys of `session` from the 32-byte pre-shared key.
    public init(algorithms: CryptoAlgorithms, psk: SecretBytes, session: UInt64) throws {
        self.algorithms = algorithms
        self.session = session
        try rederive(psk: psk, session: session)
    }

    /// Re-derives into the same buffers (no new key allocation), e.g. for a
    /// candidate new peer session. On failure the buffers are wiped.
    public func rederive(psk: SecretBytes, session: UInt64) throws {
        guard psk.count == Wire.pskLength else {
            wipe()
            throw CryptoError.keyLength(what: "PSK", expected: Wire.pskLength, actual: psk.count)
        }
        let infoLength = Wire.hkdfInfoPrefix.count + Wire.hkdfInfoSuffixLength
        do {
            try withUnsafeTemporaryAllocation(byteCount: Wire.derivedLength + infoLength, alignment: 16) { tmp in
                let okm = UnsafeMutableRawBufferPointer(rebasing: tmp[0..<Wire.derivedLength])
                let info = UnsafeMutableRawBufferPointer(rebasing: tmp[Wire.derivedLength...])
                defer { cleanse(okm) }
                Wire.hkdfInfoPrefix.withUnsafeBytes { info.copyMemory(from: $0) }
                info[Wire.hkdfInfoPrefix.count] = CBCHMACSHA256Suite.id
                info.storeBigEndian(session, at: Wire.hkdfInfoPrefix.count + 1)
                try Wire.hkdfSalt.withUnsafeBytes { salt in
                    try psk.withUnsafeBytes { ikm in
                        try algorithms.hkdfSHA256(
                            salt: salt, ikm: ikm, info: UnsafeRawBufferPointer(info), into: okm)
                    }
                }
                let k = Wire.keyLength
                enc.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: okm[0..<k])) }
                mac.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: okm[k..<2 * k])) }
                iv.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: okm[2 * k..<3 * k])) }
            }
        } catch {
            wipe()
            throw error
        }
        self.session = session
    }

    /// Zeroes all three keys now (also done when the object is dropped).
    public func wipe() {
        enc.wipe()
        mac.wipe()
        iv.wipe()
    }
}
