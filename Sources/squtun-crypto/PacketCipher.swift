import COpenSSL
import Shared

/// Cipher suite 1, the default (`CBCHMACSHA256Suite` is its layout): the OpenSSL state for sealing and opening datagrams of one session:
/// AES-256-CBC contexts (one keyed for encryption, one for decryption: their
/// key schedules differ), an AES-256-ECB context for IVs and HMAC-SHA256.
/// All allocated once in `init`, keyed once per session in `setKeys`;
/// nothing is allocated per packet, by us or by OpenSSL.
/// Not thread-safe: one instance per thread/direction.
///
/// HMAC-SHA256 (RFC 2104) from OpenSSL's SHA-256 with the two keyed states
/// precomputed: SHA-256 after the block K⊕ipad and after K⊕opad. Per packet
/// a struct copy of each state, then update/final. OpenSSL 3.0's EVP HMAC
/// (and EVP_DigestInit_ex2 on a reused context) allocates and frees a
/// provider context twice per packet (EVP_MD_CTX_copy_ex → dupctx), measured
/// with an allocation counter; the data path must not allocate. The same
/// assembly (SHA-NI/AVX2) runs underneath, and two blocks per packet are
/// saved as well.
///
/// Per-packet IVs without re-initialising the CBC contexts: a CBC context
/// fed whole blocks with `EVP_CipherUpdate` (padding off, no Final) keeps
/// chaining from the last ciphertext block C it processed. Encrypting
/// P1 ⊕ IV ⊕ C as the first block therefore yields E(P1 ⊕ IV), exactly CBC
/// with `IV`; decrypting yields D(C1) ⊕ C, which ⊕ C ⊕ IV gives P1. C is
/// public (it is on the wire) and kept here; the datagrams are byte for byte
/// those of a fresh `EVP_CipherInit_ex2(ctx, NULL, NULL, iv, enc, NULL)`
/// per packet, which costs ~60 ns more (parameter look-ups inside OpenSSL).
/// After any OpenSSL failure the context is re-synchronised to C = 0.
public final class PacketCipher: SuiteCipher {
    public typealias Suite = CBCHMACSHA256Suite

    /// K_enc ‖ K_mac ‖ K_iv.
    public static let keyMaterialLength = Wire.derivedLength
    /// Through K_mac.
    public static let verifyKeyMaterialLength = 2 * Wire.keyLength

    private let cbcEncrypt: OpaquePointer
    private let cbcDecrypt: OpaquePointer
    private let ecb: OpaquePointer
    /// SHA-256 states: [0] after K⊕ipad, [1] after K⊕opad, [2] the working copy.
    private let sha: UnsafeMutablePointer<SHA256_CTX>
    /// 64 bytes: [0..<32] the MAC computed by `verify`, [32..<48] the
    /// encryption context's chaining block, [48..<64] the decryption one's.
    private let scratch: UnsafeMutableRawBufferPointer
    /// The AES contexts and the MAC are keyed for one session.
    private var keyed = false
    /// The MAC is keyed (`verify` works); `keyed` implies it.
    private var macKeyed = false

    private static let encChainOffset = 32
    private static let decChainOffset = 48

    /// Allocates the contexts (no keys yet: call `setKeys`).
    public init(algorithms: CryptoAlgorithms) throws {
        let enc = EVP_CIPHER_CTX_new()
        let dec = EVP_CIPHER_CTX_new()
        let ivc = EVP_CIPHER_CTX_new()
        guard let enc, let dec, let ivc else {
            let e = CryptoError.failed("EVP context allocation")
            EVP_CIPHER_CTX_free(enc); EVP_CIPHER_CTX_free(dec); EVP_CIPHER_CTX_free(ivc)
            throw e
        }
        cbcEncrypt = enc
        cbcDecrypt = dec
        ecb = ivc
        sha = .allocate(capacity: 3)
        sha.initialize(repeating: SHA256_CTX(), count: 3)
        scratch = .allocate(byteCount: 64, alignment: 16)
        scratch.initializeMemory(as: UInt8.self, repeating: 0)

        guard EVP_CipherInit_ex2(enc, algorithms.aes256CBC, nil, nil, 1, nil) == 1,
              EVP_CIPHER_CTX_set_padding(enc, 0) == 1 else { throw CryptoError.failed("AES-256-CBC encrypt setup") }
        guard EVP_CipherInit_ex2(dec, algorithms.aes256CBC, nil, nil, 0, nil) == 1,
              EVP_CIPHER_CTX_set_padding(dec, 0) == 1 else { throw CryptoError.failed("AES-256-CBC decrypt setup") }
        guard EVP_CipherInit_ex2(ivc, algorithms.aes256ECB, nil, nil, 1, nil) == 1,
              EVP_CIPHER_CTX_set_padding(ivc, 0) == 1 else { throw CryptoError.failed("AES-256-ECB setup") }
    }

    deinit {
        // OpenSSL clears key schedules and HMAC key copies when freeing.
        EVP_CIPHER_CTX_free(cbcEncrypt)
        EVP_CIPHER_CTX_free(cbcDecrypt)
        EVP_CIPHER_CTX_free(ecb)
        OPENSSL_cleanse(sha, 3 * MemoryLayout<SHA256_CTX>.size)
        sha.deallocate()
        cleanse(scratch)
        scratch.deallocate()
    }

    /// Runs the key schedules for `keys` (once per session, not per packet).
    /// `keys` may be wiped or dropped afterwards: the contexts hold their own
    /// copies (cleared by OpenSSL when replaced or freed).
    public func setKeys(_ keys: SessionKeys) throws {
        try keys.enc.withUnsafeBytes { enc in
            try keys.mac.withUnsafeBytes { mac in
                try keys.iv.withUnsafeBytes { iv in try setKeys(enc: enc, mac: mac, iv: iv) }
            }
        }
    }

    /// `setKeys` from K_enc ‖ K_mac ‖ K_iv (a `SessionKeySource`'s material).
    public func setKeys(material: UnsafeRawBufferPointer) throws {
        guard material.count == Self.keyMaterialLength else {
            unkey()
            throw CryptoError.keyLength(what: "session key material", expected: Self.keyMaterialLength,
                                        actual: material.count)
        }
        let k = Wire.keyLength
        try setKeys(enc: UnsafeRawBufferPointer(rebasing: material[0..<k]),
                    mac: UnsafeRawBufferPointer(rebasing: material[k..<2 * k]),
                    iv: UnsafeRawBufferPointer(rebasing: material[2 * k..<3 * k]))
    }

    /// The MAC alone from K_enc ‖ K_mac (see `setMACKey`).
    public func setVerifyKey(material: UnsafeRawBufferPointer) -> Bool {
        guard material.count >= Self.verifyKeyMaterialLength else {
            unkey()
            return false
        }
        return setMACKey(UnsafeRawBufferPointer(rebasing: material[Wire.keyLength..<2 * Wire.keyLength]))
    }

    /// `setKeys` from the three 32-byte keys.
    func setKeys(enc: UnsafeRawBufferPointer, mac: UnsafeRawBufferPointer, iv: UnsafeRawBufferPointer) throws {
        unkey()
        guard enc.count == Wire.keyLength, iv.count == Wire.keyLength else {
            throw CryptoError.keyLength(what: "AES-256 key", expected: Wire.keyLength,
                                        actual: enc.count == Wire.keyLength ? iv.count : enc.count)
        }
        let zero = UnsafeRawPointer(scratch.baseAddress! + Self.encChainOffset).assumingMemoryBound(to: UInt8.self)
        clearChains()
        let ek = enc.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard EVP_CipherInit_ex2(cbcEncrypt, nil, ek, zero, 1, nil) == 1 else {
            throw CryptoError.failed("AES-256-CBC encrypt key setup")
        }
        guard EVP_CipherInit_ex2(cbcDecrypt, nil, ek, zero, 0, nil) == 1 else {
            throw CryptoError.failed("AES-256-CBC decrypt key setup")
        }
        guard EVP_CipherInit_ex2(ecb, nil, iv.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, 1, nil) == 1 else {
            throw CryptoError.failed("AES-256-ECB key setup")
        }
        guard setMACKey(mac) else { throw CryptoError.failed("HMAC-SHA256 key setup") }
        keyed = true
    }

    /// Keys the MAC alone (`verify` works, `seal`/`decrypt` refuse until
    /// `setKeys`): a receiver checks a datagram of a session it has not seen
    /// before paying for the AES key schedules (SessionKeyDeriver).
    func setMACKey(_ key: UnsafeRawBufferPointer) -> Bool {
        unkey()
        guard key.count <= 64, hmacSHA256Key(key, inner: sha, outer: sha + 1) else { return false }
        macKeyed = true
        return true
    }

    /// Refuses every operation until keyed again (the old key schedules stay
    /// in the contexts until replaced or freed, but are never used).
    public func unkey() {
        keyed = false
        macKeyed = false
    }

    /// True once `setKeys` succeeded: `seal` and `decrypt` work.
    public var hasCipherKeys: Bool { keyed }

    /// HMAC-SHA256 of `count` bytes at `data` into the 32 bytes at `out`.
    @inline(__always)
    private func hmac(_ data: UnsafeRawPointer, _ count: Int, into out: UnsafeMutableRawPointer) -> Bool {
        let work = sha + 2
        work.pointee = sha[0]
        return SHA256_Update(work, data, count) == 1 && hmacSHA256Finish(work, outer: sha + 1, into: out)
    }

    private func clearChains() {
        (scratch.baseAddress! + Self.encChainOffset).initializeMemory(as: UInt8.self, repeating: 0, count: 32)
    }

    /// Puts a CBC context back to chaining block 0 after a failure.
    private func resync(_ ctx: OpaquePointer, chainOffset: Int, encrypt: Int32) {
        let chain = scratch.baseAddress! + chainOffset
        chain.initializeMemory(as: UInt8.self, repeating: 0, count: Suite.blockLength)
        if EVP_CipherInit_ex2(ctx, nil, nil, chain.assumingMemoryBound(to: UInt8.self), encrypt, nil) != 1 {
            keyed = false  // cannot happen with a keyed context; refuse rather than guess
        }
        ERR_clear_error()
    }

    /// `a[0..<16] ^= b[0..<16] ^ c[0..<16]`.
    @inline(__always)
    private static func xor3(_ a: UnsafeMutableRawPointer, _ b: UnsafeRawPointer, _ c: UnsafeRawPointer) {
        for i in stride(from: 0, to: 16, by: 8) {
            let x = a.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                ^ c.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            a.storeBytes(of: x, toByteOffset: i, as: UInt64.self)
        }
    }

    /// Seals in place. The payload already sits at
    /// `packet[Suite.payloadStart ..< Suite.payloadStart + payloadLength]`;
    /// writes the header, the IV (AES-ECB(K_iv, session || counter)), the
    /// PKCS#7 padding, encrypts with AES-256-CBC and appends the HMAC-SHA256.
    /// Returns the datagram length, `Suite.packetLength(payload: payloadLength)`.
    /// Throws if `payloadLength` is outside `0...Suite.maxPayloadLength`, the
    /// buffer is too small, no keys are set, or OpenSSL fails.
    public func seal(header: Header, payloadLength: Int, packet: UnsafeMutableRawBufferPointer) throws -> Int {
        guard payloadLength >= 0, payloadLength <= Suite.maxPayloadLength else {
            throw CryptoError.payloadTooLong(payloadLength)
        }
        let padded = Suite.sealedPayloadLength(payloadLength)
        let total = Suite.fixedOverhead + padded
        guard packet.count >= total, let base = packet.baseAddress else {
            throw CryptoError.bufferTooSmall(needed: total, available: packet.count)
        }
        guard keyed else { throw CryptoError.noKeys }

        var h = header
        h.suite = Suite.id
        h.write(to: packet)
        let pad = padded - payloadLength
        (base + Suite.payloadStart + payloadLength)
            .initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: pad), count: pad)

        // IV = AES-256-ECB(K_iv, session || counter), computed in place.
        packet.storeBigEndian(header.session, at: Wire.offsetIV)
        packet.storeBigEndian(header.counter, at: Wire.offsetIV + 8)
        let iv = (base + Wire.offsetIV).assumingMemoryBound(to: UInt8.self)
        var outl: Int32 = 0
        guard EVP_CipherUpdate(ecb, iv, &outl, iv, Int32(Suite.ivLength)) == 1, outl == Suite.ivLength else {
            throw CryptoError.failed("AES-256-ECB IV")
        }

        // CBC with this IV, continuing the context's chain (see the type's comment).
        let body = base + Suite.payloadStart
        let chain = scratch.baseAddress! + Self.encChainOffset
        Self.xor3(body, iv, chain)
        let b = body.assumingMemoryBound(to: UInt8.self)
        guard EVP_CipherUpdate(cbcEncrypt, b, &outl, b, Int32(padded)) == 1, Int(outl) == padded else {
            let e = CryptoError.failed("AES-256-CBC encrypt")
            resync(cbcEncrypt, chainOffset: Self.encChainOffset, encrypt: 1)
            throw e
        }
        chain.copyMemory(from: body + padded - Suite.blockLength, byteCount: Suite.blockLength)

        let authenticated = Suite.payloadStart + padded
        guard hmac(base, authenticated, into: base + authenticated) else { throw CryptoError.failed("HMAC-SHA256") }
        return total
    }

    /// True iff the last 32 bytes are the HMAC-SHA256 of everything before
    /// them (compared in constant time with `CRYPTO_memcmp`). Must pass
    /// before `decrypt`. The caller has checked the length (false if shorter
    /// than `Suite.minPacketLength`).
    public func verify(_ packet: UnsafeMutableRawBufferPointer) -> Bool { verify(UnsafeRawBufferPointer(packet)) }

    /// `verify` of a read-only buffer: the MAC needs no writing.
    public func verify(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard macKeyed, packet.count >= Suite.minPacketLength, let base = packet.baseAddress else { return false }
        let authenticated = packet.count - Suite.macLength
        let computed = scratch.baseAddress!
        guard hmac(base, authenticated, into: computed) else { return false }
        return CRYPTO_memcmp(computed, base + authenticated, Suite.macLength) == 0
    }

    /// Decrypts a verified datagram in place: the payload ends up at
    /// `packet[Suite.payloadStart...]`; returns its length, or nil if the
    /// length is not `Suite.fixedOverhead` + n*16 (n >= 1), the PKCS#7 padding
    /// is bad, or OpenSSL fails.
    public func decrypt(_ packet: UnsafeMutableRawBufferPointer) -> Int? {
        let n = packet.count
        guard keyed, Suite.isWellFormedLength(n), let base = packet.baseAddress else { return nil }
        let padded = n - Suite.fixedOverhead
        let iv = base + Wire.offsetIV
        let body = base + Suite.payloadStart
        let chain = scratch.baseAddress! + Self.decChainOffset
        // The last ciphertext block is the next chaining block; decryption overwrites it.
        let last = body + padded - Suite.blockLength
        let next0 = last.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        let next1 = last.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        var outl: Int32 = 0
        let b = body.assumingMemoryBound(to: UInt8.self)
        guard EVP_CipherUpdate(cbcDecrypt, b, &outl, b, Int32(padded)) == 1, Int(outl) == padded else {
            ERR_clear_error()
            resync(cbcDecrypt, chainOffset: Self.decChainOffset, encrypt: 0)
            return nil
        }
        Self.xor3(body, iv, chain)
        chain.storeBytes(of: next0, toByteOffset: 0, as: UInt64.self)
        chain.storeBytes(of: next1, toByteOffset: 8, as: UInt64.self)

        // PKCS#7: last byte p in 1...16, the last p bytes all equal p.
        let p = b[padded - 1]
        guard p >= 1, Int(p) <= Suite.blockLength else { return nil }
        var diff: UInt8 = 0
        for i in (padded - Int(p))..<padded { diff |= b[i] ^ p }
        guard diff == 0 else { return nil }
        return padded - Int(p)
    }
}
