import COpenSSL
import Shared

/// HKDF-SHA256 (RFC 5869) for one fixed salt and IKM, the extract step done
/// once: PRK = HMAC(salt, IKM) is kept only as the two HMAC states of
/// `hmacSHA256Key`. `expand` then costs two SHA-256 compressions per 32
/// bytes of output (three when T(i-1) ‖ info ‖ i spills into a second
/// block), with no EVP and no allocation — what a receiver pays for the
/// keys of a session it has not seen (PROTOCOL.md §6, check 4), which any
/// datagram can ask for. `CryptoAlgorithms.hkdfSHA256` (EVP_KDF) is the
/// reference it is tested against; it allocates a context per call and
/// costs ~10 µs.
/// Not thread-safe (one scratch state).
public final class HKDFSHA256 {
    /// [0] PRK ⊕ ipad state, [1] PRK ⊕ opad state, [2] the working copy.
    private let sha: UnsafeMutablePointer<SHA256_CTX>
    /// T(i-1) between blocks, and a partial last block.
    private let block: UnsafeMutableRawPointer

    /// Extracts the PRK. An empty salt means HashLen zero bytes (RFC 5869 §2.2).
    public init(salt: UnsafeRawBufferPointer, ikm: UnsafeRawBufferPointer) throws {
        guard ikm.count > 0 else {
            throw CryptoError.keyLength(what: "HKDF input key", expected: Wire.pskLength, actual: 0)
        }
        sha = .allocate(capacity: 3)
        sha.initialize(repeating: SHA256_CTX(), count: 3)
        block = .allocate(byteCount: 32, alignment: 16)
        block.initializeMemory(as: UInt8.self, repeating: 0, count: 32)
        // PRK = HMAC-SHA256(key: salt, message: IKM), computed in `block`.
        let ok = withUnsafeTemporaryAllocation(byteCount: 32, alignment: 16) { zeros -> Bool in
            zeros.initializeMemory(as: UInt8.self, repeating: 0)
            let key = salt.count > 0 ? salt : UnsafeRawBufferPointer(zeros)
            let work = sha + 2
            guard hmacSHA256Key(key, inner: sha, outer: sha + 1) else { return false }
            work.pointee = sha[0]
            guard SHA256_Update(work, ikm.baseAddress, ikm.count) == 1,
                  hmacSHA256Finish(work, outer: sha + 1, into: block) else { return false }
            return hmacSHA256Key(UnsafeRawBufferPointer(start: block, count: 32), inner: sha, outer: sha + 1)
        }
        OPENSSL_cleanse(block, 32)
        OPENSSL_cleanse(sha + 2, MemoryLayout<SHA256_CTX>.size)
        guard ok else { throw CryptoError.failed("HKDF-SHA256 extract") }
    }

    deinit {
        OPENSSL_cleanse(sha, 3 * MemoryLayout<SHA256_CTX>.size)
        sha.deallocate()
        OPENSSL_cleanse(block, 32)
        block.deallocate()
    }

    /// OKM[0 ..< out.count] for `info` (at most 255 * 32 bytes), written into
    /// `out`. False (and `out` wiped) only if OpenSSL's SHA-256 fails.
    /// Every intermediate is wiped before returning.
    public func expand(info: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Bool {
        guard out.count <= 255 * 32, let base = out.baseAddress else { return out.count == 0 }
        let work = sha + 2
        defer {
            OPENSSL_cleanse(work, MemoryLayout<SHA256_CTX>.size)
            OPENSSL_cleanse(block, 32)
        }
        var counter: UInt8 = 1
        var offset = 0
        while offset < out.count {
            // T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i), T(0) empty; T(i-1) is in `block`.
            work.pointee = sha[0]
            var ok = offset == 0 || SHA256_Update(work, block, 32) == 1
            ok = ok && (info.count == 0 || SHA256_Update(work, info.baseAddress, info.count) == 1)
            ok = ok && SHA256_Update(work, &counter, 1) == 1
            ok = ok && hmacSHA256Finish(work, outer: sha + 1, into: block)
            guard ok else {
                OPENSSL_cleanse(base, out.count)
                return false
            }
            let n = min(32, out.count - offset)
            (base + offset).copyMemory(from: block, byteCount: n)
            offset += n
            counter &+= 1
        }
        return true
    }
}
