import Shared

/// The tunnel key T of a keypair setup (V2 design, "Keys"): what the worker
/// receives in place of a PSK and uses as the IKM of its session keys.
///
///     T = HKDF-SHA256(salt = "squtun v2 keypair",
///                     IKM  = X25519(own private, peer public) || PSK (32 zero bytes when none),
///                     info = "squtun v2 tunnel key" || lo || hi, L = 32)
///
/// lo and hi are the two public keys sorted bytewise, so both ends compute
/// the same T. The optional PSK makes T depend on a second secret too (a
/// stolen private key alone is not enough, and it hedges against X25519).
public enum TunnelKey {
    public static let salt = Array("squtun v2 keypair".utf8)
    public static let infoPrefix = Array("squtun v2 tunnel key".utf8)

    /// T for this host's `privateKey`, the peer's `peerPublic` and an optional
    /// `psk` (32 bytes). Every intermediate secret (the X25519 result, the
    /// IKM) is wiped before returning, whether it succeeds or not; the caller
    /// wipes `privateKey` and `psk`.
    /// Refuses the peer's key equal to our own (`peerKeyIsOwn`: both ends were
    /// given the same .pub, or this host's own) and a low-order peer key.
    public static func derive(privateKey: SecretBytes, peerPublic: [UInt8], psk: SecretBytes?,
                              algorithms: CryptoAlgorithms) throws(CryptoError) -> SecretBytes {
        if let psk, psk.count != Wire.pskLength {
            throw .keyLength(what: "PSK", expected: Wire.pskLength, actual: psk.count)
        }
        let own = try X25519.publicKey(of: privateKey)
        guard own != peerPublic else { throw .peerKeyIsOwn }
        let shared = try X25519.sharedSecret(privateKey: privateKey, peerPublic: peerPublic)
        let ikm = SecretBytes(count: 2 * X25519.keyLength)
        defer { ikm.wipe() }
        ikm.withUnsafeMutableBytes { i in
            shared.withUnsafeBytes { s in i.copyMemory(from: s) }
            if let psk { psk.withUnsafeBytes { p in UnsafeMutableRawBufferPointer(rebasing: i[32...]).copyMemory(from: p) } }
        }
        shared.wipe()
        let (lo, hi) = own.lexicographicallyPrecedes(peerPublic) ? (own, peerPublic) : (peerPublic, own)
        let info = infoPrefix + lo + hi
        let t = SecretBytes(count: Wire.pskLength)
        do {
            try salt.withUnsafeBytes { s in
                try info.withUnsafeBytes { inf in
                    try ikm.withUnsafeBytes { k in
                        try t.withUnsafeMutableBytes { try algorithms.hkdfSHA256(salt: s, ikm: k, info: inf, into: $0) }
                    }
                }
            }
        } catch let error as CryptoError {
            t.wipe()
            throw error
        } catch {
            t.wipe()
            throw .failed("HKDF-SHA256 derive")
        }
        return t
    }
}
