import COpenSSL
import Shared

/// The OpenSSL state for sealing and opening datagrams of one session
/// direction: AES-256-CBC contexts (one keyed for encryption, one for
/// decryption: their key schedules differ), an AES-256-ECB context for IVs
/// and an HMAC-SHA256 context. All allocated once in `init`, keyed once per
/// session in `setKeys`; per packet only the IV is set and the HMAC re-inits
/// from its stored key. Not thread-safe: one instance per thread/direction.
public final class PacketCipher {
    private let cbcEncrypt: OpaquePointer
    private let cbcDecrypt: OpaquePointer
    private let ecb: OpaquePointer
    private let mac: OpaquePointer
    /// 32 bytes: the MAC computed by `verify`.
    private let scratch: UnsafeMutableRawBufferPointer
    private var keyed = false

    /// Allocates the contexts (no keys yet: call `setKeys`).
    public init(algorithms: CryptoAlgorithms) throws {
        let enc = EVP_CIPHER_CTX_new()
        let dec = EVP_CIPHER_CTX_new()
        let ivc = EVP_CIPHER_CTX_new()
        let m = EVP_MAC_CTX_new(algorithms.hmac)
        guard let enc, let dec, let ivc, let m else {
            let e = CryptoError.failed("EVP context allocation")
            EVP_CIPHER_CTX_free(enc); EVP_CIPHER_CTX_free(dec); EVP_CIPHER_CTX_free(ivc); EVP_MAC_CTX_free(m)
            throw e
        }
        cbcEncrypt = enc
        cbcDecrypt = dec
        ecb = ivc
        mac = m
        scratch = .allocate(byteCount: Wire.macLength, alignment: 16)
        scratch.initializeMemory(as: UInt8.self, repeating: 0)

        guard EVP_CipherInit_ex2(enc, algorithms.aes256CBC, nil, nil, 1, nil) == 1,
              EVP_CIPHER_CTX_set_padding(enc, 0) == 1 else { throw CryptoError.failed("AES-256-CBC encrypt setup") }
        guard EVP_CipherInit_ex2(dec, algorithms.aes256CBC, nil, nil, 0, nil) == 1,
              EVP_CIPHER_CTX_set_padding(dec, 0) == 1 else { throw CryptoError.failed("AES-256-CBC decrypt setup") }
        guard EVP_CipherInit_ex2(ivc, algorithms.aes256ECB, nil, nil, 1, nil) == 1,
              EVP_CIPHER_CTX_set_padding(ivc, 0) == 1 else { throw CryptoError.failed("AES-256-ECB setup") }
        let ok = withUnsafeTemporaryAllocation(of: OSSL_PARAM.self, capacity: 2) { p in
            p[0] = OSSL_PARAM_construct_utf8_string(ParamName.digest, ParamName.sha256, 0)
            p[1] = OSSL_PARAM_construct_end()
            return EVP_MAC_CTX_set_params(m, p.baseAddress)
        }
        guard ok == 1 else { throw CryptoError.failed("HMAC-SHA256 setup") }
    }

    deinit {
        // OpenSSL clears key schedules and HMAC key copies when freeing.
        EVP_CIPHER_CTX_free(cbcEncrypt)
        EVP_CIPHER_CTX_free(cbcDecrypt)
        EVP_CIPHER_CTX_free(ecb)
        EVP_MAC_CTX_free(mac)
        cleanse(scratch)
        scratch.deallocate()
    }

    /// Runs the key schedules for `keys` (once per session, not per packet).
    /// `keys` may be dropped afterwards: the contexts hold their own copies.
    public func setKeys(_ keys: SessionKeys) throws {
        keyed = false
        try keys.enc.withUnsafeBytes { k in
            let kp = k.baseAddress!.assumingMemoryBound(to: UInt8.self)
            guard EVP_CipherInit_ex2(cbcEncrypt, nil, kp, nil, 1, nil) == 1 else {
                throw CryptoError.failed("AES-256-CBC encrypt key setup")
            }
            guard EVP_CipherInit_ex2(cbcDecrypt, nil, kp, nil, 0, nil) == 1 else {
                throw CryptoError.failed("AES-256-CBC decrypt key setup")
            }
        }
        try keys.iv.withUnsafeBytes { k in
            guard EVP_CipherInit_ex2(ecb, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, 1, nil) == 1 else {
                throw CryptoError.failed("AES-256-ECB key setup")
            }
        }
        try keys.mac.withUnsafeBytes { k in
            guard EVP_MAC_init(mac, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count, nil) == 1 else {
                throw CryptoError.failed("HMAC-SHA256 key setup")
            }
        }
        keyed = true
    }

    /// Seals in place. The payload already sits at
    /// `packet[Wire.offsetCiphertext ..< Wire.offsetCiphertext + payloadLength]`;
    /// writes the header, the IV (AES-ECB(K_iv, session || counter)), the
    /// PKCS#7 padding, encrypts with AES-256-CBC and appends the HMAC-SHA256.
    /// Returns the datagram length, `Wire.packetLength(payload: payloadLength)`.
    /// Throws if `payloadLength` is outside `0...Wire.maxPayloadLength`, the
    /// buffer is too small, no keys are set, or OpenSSL fails.
    public func seal(header: Header, payloadLength: Int, packet: UnsafeMutableRawBufferPointer) throws -> Int {
        guard payloadLength >= 0, payloadLength <= Wire.maxPayloadLength else {
            throw CryptoError.payloadTooLong(payloadLength)
        }
        let padded = Wire.paddedLength(payloadLength)
        let total = Wire.fixedOverhead + padded
        guard packet.count >= total, let base = packet.baseAddress else {
            throw CryptoError.bufferTooSmall(needed: total, available: packet.count)
        }
        guard keyed else { throw CryptoError.noKeys }

        header.write(to: packet)
        let pad = padded - payloadLength
        (base + Wire.offsetCiphertext + payloadLength)
            .initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: pad), count: pad)

        // IV = AES-256-ECB(K_iv, session || counter), computed in place.
        packet.storeBigEndian(header.session, at: Wire.offsetIV)
        packet.storeBigEndian(header.counter, at: Wire.offsetIV + 8)
        let iv = (base + Wire.offsetIV).assumingMemoryBound(to: UInt8.self)
        var outl: Int32 = 0
        guard EVP_CipherUpdate(ecb, iv, &outl, iv, Int32(Wire.ivLength)) == 1, outl == Wire.ivLength else {
            throw CryptoError.failed("AES-256-ECB IV")
        }

        let body = (base + Wire.offsetCiphertext).assumingMemoryBound(to: UInt8.self)
        guard EVP_CipherInit_ex2(cbcEncrypt, nil, nil, iv, 1, nil) == 1,
              EVP_CipherUpdate(cbcEncrypt, body, &outl, body, Int32(padded)) == 1,
              Int(outl) == padded else {
            throw CryptoError.failed("AES-256-CBC encrypt")
        }

        let authenticated = Wire.offsetCiphertext + padded
        var macLength = 0
        guard EVP_MAC_init(mac, nil, 0, nil) == 1,
              EVP_MAC_update(mac, base.assumingMemoryBound(to: UInt8.self), authenticated) == 1,
              EVP_MAC_final(mac, (base + authenticated).assumingMemoryBound(to: UInt8.self),
                            &macLength, Wire.macLength) == 1,
              macLength == Wire.macLength else {
            throw CryptoError.failed("HMAC-SHA256")
        }
        return total
    }

    /// True iff the last 32 bytes are the HMAC-SHA256 of everything before
    /// them (compared in constant time with `CRYPTO_memcmp`). Must pass
    /// before `decrypt`. The caller has checked the length (false if shorter
    /// than `Wire.minPacketLength`).
    public func verify(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard keyed, packet.count >= Wire.minPacketLength, let base = packet.baseAddress else { return false }
        let authenticated = packet.count - Wire.macLength
        let computed = scratch.baseAddress!
        var macLength = 0
        guard EVP_MAC_init(mac, nil, 0, nil) == 1,
              EVP_MAC_update(mac, base.assumingMemoryBound(to: UInt8.self), authenticated) == 1,
              EVP_MAC_final(mac, computed.assumingMemoryBound(to: UInt8.self), &macLength, Wire.macLength) == 1,
              macLength == Wire.macLength else {
            ERR_clear_error()
            return false
        }
        return CRYPTO_memcmp(computed, base + authenticated, Wire.macLength) == 0
    }

    /// Decrypts a verified datagram in place: the payload ends up at
    /// `packet[Wire.offsetCiphertext...]`; returns its length, or nil if the
    /// length is not `Wire.fixedOverhead` + n*16 (n >= 1), the PKCS#7 padding
    /// is bad, or OpenSSL fails.
    public func decrypt(_ packet: UnsafeMutableRawBufferPointer) -> Int? {
        let n = packet.count
        guard keyed, n >= Wire.minPacketLength, (n - Wire.fixedOverhead) % Wire.blockLength == 0,
              let base = packet.baseAddress else { return nil }
        let padded = n - Wire.fixedOverhead
        let iv = (base + Wire.offsetIV).assumingMemoryBound(to: UInt8.self)
        let body = (base + Wire.offsetCiphertext).assumingMemoryBound(to: UInt8.self)
        var outl: Int32 = 0
        guard EVP_CipherInit_ex2(cbcDecrypt, nil, nil, iv, 0, nil) == 1,
              EVP_CipherUpdate(cbcDecrypt, body, &outl, body, Int32(padded)) == 1,
              Int(outl) == padded else {
            ERR_clear_error()
            return nil
        }
        // PKCS#7: last byte p in 1...16, the last p bytes all equal p.
        let p = body[padded - 1]
        guard p >= 1, Int(p) <= Wire.blockLength else { return nil }
        var diff: UInt8 = 0
        for i in (padded - Int(p))..<padded { diff |= body[i] ^ p }
        guard diff == 0 else { return nil }
        return padded - Int(p)
    }
}
