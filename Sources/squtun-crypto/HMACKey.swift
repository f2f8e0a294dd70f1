import COpenSSL

// HMAC-SHA256 (RFC 2104) with the key absorbed once: the SHA-256 states
// after the block K ⊕ ipad and after K ⊕ opad. An HMAC is then a struct copy
// of each state plus update/final, with OpenSSL's SHA-256 (SHA-NI/AVX2) and
// no allocation. Used by PacketCipher for K_mac and by HKDFSHA256 for the PRK.

/// Sets `inner`/`outer` to the SHA-256 states after (K ‖ 0…) ⊕ ipad and
/// ⊕ opad. A key longer than a block is hashed first (RFC 2104). The
/// padded key is wiped before returning. Allocation-free.
func hmacSHA256Key(_ key: UnsafeRawBufferPointer, inner: UnsafeMutablePointer<SHA256_CTX>,
                   outer: UnsafeMutablePointer<SHA256_CTX>) -> Bool {
    withUnsafeTemporaryAllocation(byteCount: 64 + 32, alignment: 16) { tmp -> Bool in
        let pad = tmp.baseAddress!
        let hashed = pad + 64
        defer { OPENSSL_cleanse(pad, 96) }
        var k = key
        if key.count > 64 {
            // Hashed with the caller's state as scratch (SHA256() goes through EVP, which allocates).
            guard SHA256_Init(inner) == 1, SHA256_Update(inner, key.baseAddress, key.count) == 1,
                  SHA256_Final(hashed.assumingMemoryBound(to: UInt8.self), inner) == 1 else { return false }
            k = UnsafeRawBufferPointer(start: hashed, count: 32)
        }
        var ok = true
        for pass in 0..<2 {
            let byte: UInt8 = pass == 0 ? 0x36 : 0x5c
            let state = pass == 0 ? inner : outer
            for i in 0..<64 {
                pad.storeBytes(of: (i < k.count ? k[i] : 0) ^ byte, toByteOffset: i, as: UInt8.self)
            }
            ok = ok && SHA256_Init(state) == 1 && SHA256_Update(state, pad, 64) == 1
        }
        return ok
    }
}

/// Finishes an HMAC whose message has been fed into `work` (a copy of the
/// inner state): `out` (32 bytes) := SHA-256(outer state ‖ SHA-256(inner ‖ message)).
/// `work` holds key-dependent state afterwards; the caller wipes it when that matters.
@inline(__always)
func hmacSHA256Finish(_ work: UnsafeMutablePointer<SHA256_CTX>, outer: UnsafePointer<SHA256_CTX>,
                      into out: UnsafeMutableRawPointer) -> Bool {
    let digest = out.assumingMemoryBound(to: UInt8.self)
    guard SHA256_Final(digest, work) == 1 else { return false }
    work.pointee = outer.pointee
    return SHA256_Update(work, out, 32) == 1 && SHA256_Final(digest, work) == 1
}
