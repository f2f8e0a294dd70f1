import COpenSSL
import Glibc
import Shared

/// OpenSSL initialised and every algorithm squtun fetches fetched once:
/// AES-256-CBC, AES-256-ECB, AES-256-GCM, ChaCha20-Poly1305, HKDF. (HMAC-SHA256 uses OpenSSL's SHA-256
/// functions directly, HMACKey.swift: nothing to fetch.) Create it before
/// chroot/privilege drop so nothing is loaded lazily afterwards (config,
/// providers, error strings, the DRBG). Immutable after init; freed on deinit.
public final class CryptoAlgorithms: @unchecked Sendable {
    let aes256CBC: OpaquePointer
    let aes256ECB: OpaquePointer
    let aes256GCM: OpaquePointer
    let chacha20Poly1305: OpaquePointer
    let hkdf: OpaquePointer

    /// Loads the OpenSSL configuration, error strings and default provider,
    /// fetches the algorithms and instantiates the random generator.
    public init() throws {
        let opts = UInt64(OPENSSL_INIT_LOAD_CONFIG) | UInt64(OPENSSL_INIT_LOAD_CRYPTO_STRINGS)
            | UInt64(OPENSSL_INIT_ADD_ALL_CIPHERS) | UInt64(OPENSSL_INIT_ADD_ALL_DIGESTS)
        guard OPENSSL_init_crypto(opts, nil) == 1 else {
            throw CryptoError.initialization(openssl: CryptoError.opensslError())
        }
        func cipher(_ name: String) throws -> OpaquePointer {
            guard let c = EVP_CIPHER_fetch(nil, name, nil) else {
                throw CryptoError.fetch(algorithm: name, openssl: CryptoError.opensslError())
            }
            return c
        }
        var fetched: [OpaquePointer] = []
        do {
            for name in ["AES-256-CBC", "AES-256-ECB", "AES-256-GCM", "ChaCha20-Poly1305"] {
                fetched.append(try cipher(name))
            }
        } catch {
            fetched.forEach { EVP_CIPHER_free($0) }
            throw error
        }
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else {
            fetched.forEach { EVP_CIPHER_free($0) }
            throw CryptoError.fetch(algorithm: "HKDF", openssl: CryptoError.opensslError())
        }
        aes256CBC = fetched[0]
        aes256ECB = fetched[1]
        aes256GCM = fetched[2]
        chacha20Poly1305 = fetched[3]
        hkdf = kdf
        // Instantiate and seed the DRBG now (it would otherwise happen on first use).
        var probe: UInt8 = 0
        guard RAND_bytes(&probe, 1) == 1 else {
            throw CryptoError.failed("RAND_bytes")
        }
    }

    deinit {
        EVP_CIPHER_free(aes256CBC)
        EVP_CIPHER_free(aes256ECB)
        EVP_CIPHER_free(aes256GCM)
        EVP_CIPHER_free(chacha20Poly1305)
        EVP_KDF_free(hkdf)
    }

    /// HKDF-SHA256 (RFC 5869, extract-and-expand) through EVP_KDF, writing
    /// `out.count` bytes (at most 255 * 32). Empty `salt`/`info` mean none;
    /// `ikm` must not be empty.
    public func hkdfSHA256(
        salt: UnsafeRawBufferPointer, ikm: UnsafeRawBufferPointer,
        info: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer
    ) throws {
        guard ikm.count > 0, let ikmBase = ikm.baseAddress else {
            throw CryptoError.keyLength(what: "HKDF input key", expected: Wire.pskLength, actual: 0)
        }
        guard out.count > 0, out.count <= 255 * 32, let outBase = out.baseAddress else {
            throw CryptoError.keyLength(what: "HKDF output", expected: Wire.derivedLength, actual: out.count)
        }
        guard let ctx = EVP_KDF_CTX_new(hkdf) else { throw CryptoError.failed("HKDF-SHA256 context") }
        defer { EVP_KDF_CTX_free(ctx) }  // HKDF clears its key copy when freed
        let params = UnsafeMutablePointer<OSSL_PARAM>.allocate(capacity: 5)
        defer { params.deallocate() }
        var n = 0
        params[n] = OSSL_PARAM_construct_utf8_string(ParamName.digest, ParamName.sha256, 0); n += 1
        params[n] = OSSL_PARAM_construct_octet_string(ParamName.key, UnsafeMutableRawPointer(mutating: ikmBase), ikm.count); n += 1
        if salt.count > 0, let s = salt.baseAddress {
            params[n] = OSSL_PARAM_construct_octet_string(ParamName.salt, UnsafeMutableRawPointer(mutating: s), salt.count); n += 1
        }
        if info.count > 0, let i = info.baseAddress {
            params[n] = OSSL_PARAM_construct_octet_string(ParamName.info, UnsafeMutableRawPointer(mutating: i), info.count); n += 1
        }
        params[n] = OSSL_PARAM_construct_end()
        guard EVP_KDF_derive(ctx, outBase.assumingMemoryBound(to: UInt8.self), out.count, params) == 1 else {
            throw CryptoError.failed("HKDF-SHA256 derive")
        }
    }
}

/// NUL-terminated OSSL_PARAM names with static lifetime (an OSSL_PARAM keeps the pointer).
enum ParamName {
    nonisolated(unsafe) static let digest = strdup("digest")!
    nonisolated(unsafe) static let key = strdup("key")!
    nonisolated(unsafe) static let salt = strdup("salt")!
    nonisolated(unsafe) static let info = strdup("info")!
    nonisolated(unsafe) static let sha256 = strdup("SHA256")!
    /// OSSL_CIPHER_PARAM_AEAD_TAG
    nonisolated(unsafe) static let tag = strdup("tag")!
    /// OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED: ChaCha20-Poly1305's whole 96-bit nonce.
    nonisolated(unsafe) static let fixedNonce = strdup("tlsivfixed")!
}

/// Constant-time comparison (`CRYPTO_memcmp`); false if the lengths differ.
public func constantTimeEquals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    if a.count == 0 { return true }
    return CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
}

extension SecretBytes {
    /// Constant-time equality of two secrets (`constantTimeEquals` above).
    public func constantTimeEquals(_ other: SecretBytes) -> Bool {
        withUnsafeBytes { a in other.withUnsafeBytes { b in squtun_crypto.constantTimeEquals(a, b) } }
    }
}

/// Fills `out` from OpenSSL's CSPRNG (`RAND_bytes`). For setup (session ids,
/// key generation), not per packet.
public func randomBytes(_ out: UnsafeMutableRawBufferPointer) throws {
    guard out.count > 0 else { return }
    guard out.count <= Int(Int32.max),
          RAND_bytes(out.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(out.count)) == 1 else {
        throw CryptoError.failed("RAND_bytes")
    }
}

/// Zeroes memory with `OPENSSL_cleanse` (not elided by the compiler).
@inline(__always)
func cleanse(_ p: UnsafeMutableRawBufferPointer) {
    if let b = p.baseAddress, p.count > 0 { OPENSSL_cleanse(b, p.count) }
}
