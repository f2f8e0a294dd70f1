import COpenSSL
import Shared

/// X25519 (RFC 7748) through OpenSSL's EVP_PKEY with raw 32-byte keys: the
/// keypair setup's Diffie-Hellman. Used at setup only, by the root helper
/// (or the single process), never by the worker: the worker gets the tunnel
/// key T (`TunnelKey`) and nothing else.
///
/// Private keys and shared secrets live in `SecretBytes` (wiped, kept out of
/// core dumps); OpenSSL's own copy of a private key is cleared when the
/// EVP_PKEY is freed (its X25519 key type frees the private half with
/// OPENSSL_secure_clear_free).
public enum X25519 {
    public static let keyLength = 32

    /// A new private key: 32 bytes from OpenSSL's random generator (RFC 7748
    /// §5: any 32 bytes are a private key; X25519 clamps them itself).
    public static func generatePrivateKey() throws(CryptoError) -> SecretBytes {
        let key = SecretBytes(count: keyLength)
        do {
            try key.withUnsafeMutableBytes { try randomBytes($0) }
        } catch {
            throw .failed("RAND_bytes")
        }
        return key
    }

    /// The public key of `privateKey` (X25519(k, 9)).
    public static func publicKey(of privateKey: SecretBytes) throws(CryptoError) -> [UInt8] {
        let pkey = try loadPrivate(privateKey)
        defer { EVP_PKEY_free(pkey) }
        var out = [UInt8](repeating: 0, count: keyLength)
        var length = keyLength
        guard EVP_PKEY_get_raw_public_key(pkey, &out, &length) == 1, length == keyLength else {
            throw .failed("X25519 public key")
        }
        return out
    }

    /// X25519(privateKey, peerPublic): the 32-byte shared secret. Refuses a
    /// result of all zeros (`lowOrderPeerKey`: the peer's key is one of the
    /// few points that force it, whatever our key; RFC 7748 §6.1), which
    /// OpenSSL's derive already fails on; the check here does not rely on that.
    public static func sharedSecret(privateKey: SecretBytes, peerPublic: [UInt8]) throws(CryptoError) -> SecretBytes {
        guard peerPublic.count == keyLength else {
            throw .keyLength(what: "X25519 public key", expected: keyLength, actual: peerPublic.count)
        }
        let mine = try loadPrivate(privateKey)
        defer { EVP_PKEY_free(mine) }
        guard let theirs = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, peerPublic, keyLength) else {
            throw .failed("X25519 public key")
        }
        defer { EVP_PKEY_free(theirs) }
        guard let ctx = EVP_PKEY_CTX_new(mine, nil) else { throw .failed("X25519 context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_derive_init(ctx) == 1, EVP_PKEY_derive_set_peer(ctx, theirs) == 1 else {
            throw .failed("X25519 derive")
        }
        let secret = SecretBytes(count: keyLength)
        let status: Int32 = secret.withUnsafeMutableBytes { s in
            var length = keyLength
            let rc = EVP_PKEY_derive(ctx, s.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
            return rc == 1 && length == keyLength ? 1 : 0
        }
        // With two well-formed keys loaded, OpenSSL's X25519 derive fails
        // for one reason: the all-zero result.
        guard status == 1 else {
            ERR_clear_error()
            secret.wipe()
            throw .lowOrderPeerKey
        }
        let zero: Bool = secret.withUnsafeBytes { s in s.reduce(UInt8(0)) { $0 | $1 } == 0 }
        guard !zero else { throw .lowOrderPeerKey }
        return secret
    }

    private static func loadPrivate(_ key: SecretBytes) throws(CryptoError) -> OpaquePointer {
        guard key.count == keyLength else {
            throw .keyLength(what: "X25519 private key", expected: keyLength, actual: key.count)
        }
        let pkey = key.withUnsafeBytes { k in
            EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), keyLength)
        }
        guard let pkey else { throw .failed("X25519 private key") }
        return pkey
    }
}
