import COpenSSL
import Shared

/// The OpenSSL state of one session of an AEAD suite (AES-256-GCM or
/// ChaCha20-Poly1305, RFC 5116 / RFC 8439): one context keyed for sealing,
/// one for opening, made once in `init`; the key is set once per session
/// (`setKeys`); per packet only the nonce (N_salt XOR counter), the 32
/// header bytes as associated data, one in-place update and the tag.
/// Nothing is allocated per packet, by us or by OpenSSL.
/// Not thread-safe: one instance per thread/direction.
///
/// How the nonce and the tag reach OpenSSL per datagram: through
/// parameter arrays built once here (`EVP_CIPHER_CTX_set_params`/
/// `get_params`), not `EVP_CIPHER_CTX_ctrl`, which builds the same array
/// on every call. ChaCha20-Poly1305 takes its nonce the same way, as its
/// provider's full 96-bit fixed nonce ("tlsivfixed"), which sets exactly
/// the nonce words; re-initialising the context for each nonce
/// (`EVP_CipherInit_ex2`) went through OpenSSL's whole init path and cost
/// about a quarter of a 64-byte datagram's sealing. The provider starts
/// each message's Poly1305 (its one-time key from block 0 of the new
/// nonce) when a message's final step has ended the previous one; a
/// sequence that stops before its final step is reset with the full init
/// (`restart`), so the next datagram never continues a stale MAC.
/// AES-256-GCM has no such parameter and keeps the re-init.
public final class AEADState {
    private let sealing: OpaquePointer
    private let opening: OpaquePointer
    /// [0..<12] N_salt, [16..<28] the nonce being built, [32..<64] zeros
    /// (the key that overwrites a dropped one), [64..<80] Final's output
    /// (an AEAD writes none).
    private let scratch: UnsafeMutableRawBufferPointer
    private static let nonceOffset = 16
    private static let zeroKeyOffset = 32
    private static let finalOffset = 64
    private static let tagLength = 16
    private static let nonceLength = 12
    private let name: String
    /// ChaCha20-Poly1305: the nonce by parameter (see above).
    private let nonceByParameter: Bool
    /// [nonce, end]: the sealing context's nonce.
    private let sealNonce: UnsafeMutablePointer<OSSL_PARAM>
    /// [tag, end]: the sealing context's tag, `data` pointed at the datagram's tag.
    private let sealTag: UnsafeMutablePointer<OSSL_PARAM>
    /// [nonce, tag, end] (ChaCha20-Poly1305) or [tag, end, end] (AES-256-GCM):
    /// the opening context's expected tag and, for ChaCha20-Poly1305, its nonce.
    private let openParams: UnsafeMutablePointer<OSSL_PARAM>
    private var openTag: UnsafeMutablePointer<OSSL_PARAM> { openParams + (nonceByParameter ? 1 : 0) }
    private(set) var keyed = false
    /// The sealing context holds this session's key too (`setKeys`, not `setOpeningKeys`).
    private var sealKeyed = false
    /// The datagram `open` authenticated last (its start and length), for
    /// `take`: a length is handed out only for that datagram, once.
    private var verifiedBase: UnsafeMutableRawPointer?
    private var verifiedCount = 0

    /// Contexts for `algorithm` (no key yet); `name` for errors;
    /// `nonceByParameter` for ChaCha20-Poly1305 only.
    init(algorithm: OpaquePointer, name: String, nonceByParameter: Bool) throws {
        let enc = EVP_CIPHER_CTX_new()
        let dec = EVP_CIPHER_CTX_new()
        guard let enc, let dec else {
            let e = CryptoError.failed("EVP context allocation")
            EVP_CIPHER_CTX_free(enc); EVP_CIPHER_CTX_free(dec)
            throw e
        }
        sealing = enc
        opening = dec
        self.name = name
        scratch = .allocate(byteCount: 80, alignment: 16)
        scratch.initializeMemory(as: UInt8.self, repeating: 0)
        self.nonceByParameter = nonceByParameter
        let nonce = scratch.baseAddress! + Self.nonceOffset
        func nonceParam() -> OSSL_PARAM { OSSL_PARAM_construct_octet_string(ParamName.fixedNonce, nonce, Self.nonceLength) }
        func tagParam() -> OSSL_PARAM { OSSL_PARAM_construct_octet_string(ParamName.tag, nil, Self.tagLength) }
        sealNonce = .allocate(capacity: 2)
        sealNonce.initialize(to: nonceParam())
        (sealNonce + 1).initialize(to: OSSL_PARAM_construct_end())
        sealTag = .allocate(capacity: 2)
        sealTag.initialize(to: tagParam())
        (sealTag + 1).initialize(to: OSSL_PARAM_construct_end())
        openParams = .allocate(capacity: 3)
        openParams.initialize(to: nonceByParameter ? nonceParam() : tagParam())
        (openParams + 1).initialize(to: nonceByParameter ? tagParam() : OSSL_PARAM_construct_end())
        (openParams + 2).initialize(to: OSSL_PARAM_construct_end())
        guard EVP_CipherInit_ex2(enc, algorithm, nil, nil, 1, nil) == 1,
              EVP_CipherInit_ex2(dec, algorithm, nil, nil, 0, nil) == 1 else {
            throw CryptoError.failed("\(name) setup")
        }
        // Both algorithms' default nonce is 96 bits, as the protocol's.
        guard EVP_CIPHER_CTX_get_iv_length(enc) == Int32(Self.nonceLength),
              EVP_CIPHER_CTX_get_iv_length(dec) == Int32(Self.nonceLength) else {
            throw CryptoError.failed("\(name) nonce length")
        }
    }

    deinit {
        // OpenSSL clears the key schedules when freeing the contexts.
        EVP_CIPHER_CTX_free(sealing)
        EVP_CIPHER_CTX_free(opening)
        cleanse(scratch)
        scratch.deallocate()
        sealNonce.deallocate()
        sealTag.deallocate()
        openParams.deallocate()
    }

    /// K (32) ‖ N_salt (12): keys both contexts, keeps the salt.
    func setKeys(_ material: UnsafeRawBufferPointer) -> Bool {
        setKeys(material, sealing: true)
    }

    /// Keys the opening context only: what a receiver needs to check (and
    /// open) a datagram of a session it has not seen. A datagram anyone can
    /// send asks for this, so it costs one key setup, not two: the sealing
    /// context is keyed only by `setKeys`, which a sender calls.
    func setOpeningKeys(_ material: UnsafeRawBufferPointer) -> Bool {
        setKeys(material, sealing: false)
    }

    private func setKeys(_ material: UnsafeRawBufferPointer, sealing withSealing: Bool) -> Bool {
        verifiedBase = nil
        guard material.count == Wire.keyLength + Self.nonceLength, let m = material.baseAddress else {
            unkey()
            return false
        }
        let key = m.assumingMemoryBound(to: UInt8.self)
        guard !withSealing || EVP_CipherInit_ex2(sealing, nil, key, nil, 1, nil) == 1,
              EVP_CipherInit_ex2(opening, nil, key, nil, 0, nil) == 1 else {
            ERR_clear_error()
            unkey()
            return false
        }
        scratch.baseAddress!.copyMemory(from: m + Wire.keyLength, byteCount: Self.nonceLength)
        keyed = true
        sealKeyed = withSealing
        return true
    }

    func unkey() {
        verifiedBase = nil
        keyed = false
        sealKeyed = false
        OPENSSL_cleanse(scratch.baseAddress, Self.zeroKeyOffset)
        let zero = UnsafePointer((scratch.baseAddress! + Self.zeroKeyOffset).assumingMemoryBound(to: UInt8.self))
        _ = EVP_CipherInit_ex2(sealing, nil, zero, nil, 1, nil)
        _ = EVP_CipherInit_ex2(opening, nil, zero, nil, 0, nil)
        ERR_clear_error()
    }

    /// Nonce = N_salt XOR (0x00000000 ‖ counter, 8 bytes BE), into the scratch.
    @inline(__always)
    private func nonce(_ counter: UInt64) -> UnsafePointer<UInt8> {
        let s = scratch.baseAddress!
        let n = s + Self.nonceOffset
        n.storeBytes(of: s.loadUnaligned(as: UInt32.self), as: UInt32.self)
        let low = s.loadUnaligned(fromByteOffset: 4, as: UInt64.self) ^ counter.bigEndian
        n.storeBytes(of: low, toByteOffset: 4, as: UInt64.self)
        return UnsafePointer(n.assumingMemoryBound(to: UInt8.self))
    }

    /// Feeds the 32 header bytes as associated data and `count` bytes at
    /// `body` through `ctx` in place.
    @inline(__always)
    private static func run(_ ctx: OpaquePointer, header: UnsafeMutableRawPointer, body: UnsafeMutableRawPointer,
                            count: Int) -> Bool {
        var outl: Int32 = 0
        guard EVP_CipherUpdate(ctx, nil, &outl, header.assumingMemoryBound(to: UInt8.self),
                               Int32(Wire.headerLength)) == 1 else { return false }
        if count == 0 { return true }
        let b = body.assumingMemoryBound(to: UInt8.self)
        return EVP_CipherUpdate(ctx, b, &outl, b, Int32(count)) == 1 && Int(outl) == count
    }

    /// Seals in place: header (with `suite`), then ciphertext over the
    /// payload at `packet[32...]`, then the tag. Returns the datagram length.
    func seal(header: Header, suite: UInt8, payloadLength: Int, maxPayload: Int,
              packet: UnsafeMutableRawBufferPointer) throws -> Int {
        guard payloadLength >= 0, payloadLength <= maxPayload else { throw CryptoError.payloadTooLong(payloadLength) }
        let total = Wire.headerLength + payloadLength + Self.tagLength
        guard packet.count >= total, let base = packet.baseAddress else {
            throw CryptoError.bufferTooSmall(needed: total, available: packet.count)
        }
        guard keyed, sealKeyed else { throw CryptoError.noKeys }
        var h = header
        h.suite = suite
        h.write(to: packet)
        let body = base + Wire.headerLength
        var outl: Int32 = 0
        let n = nonce(header.counter)
        sealTag.pointee.data = body + payloadLength
        guard nonceByParameter ? EVP_CIPHER_CTX_set_params(sealing, sealNonce) == 1
                               : EVP_CipherInit_ex2(sealing, nil, nil, n, 1, nil) == 1,
              Self.run(sealing, header: base, body: body, count: payloadLength),
              EVP_CipherFinal_ex(sealing, finalOutput, &outl) == 1,
              EVP_CIPHER_CTX_get_params(sealing, sealTag) == 1
        else {
            restart(sealing, encrypting: true)
            throw CryptoError.failed("\(name) seal")
        }
        return total
    }

    private var finalOutput: UnsafeMutablePointer<UInt8> {
        (scratch.baseAddress! + Self.finalOffset).assumingMemoryBound(to: UInt8.self)
    }

    /// After a sequence that stopped early: the full init resets the
    /// context's message state (the nonce set then is never used: the
    /// next datagram sets its own).
    private func restart(_ ctx: OpaquePointer, encrypting: Bool) {
        _ = EVP_CipherInit_ex2(ctx, nil, nil, nonce(0), encrypting ? 1 : 0, nil)
        ERR_clear_error()
    }

    /// Checks the tag and decrypts in one operation, in place: true iff
    /// the tag (compared in constant time by OpenSSL) verifies for the
    /// header as associated data. Whatever the answer, only the datagram's
    /// own buffer was written; `take` then gives the payload's length.
    func open(_ packet: UnsafeMutableRawBufferPointer) -> Bool {
        verifiedBase = nil
        let n = packet.count
        guard keyed, n >= Wire.headerLength + Self.tagLength, let base = packet.baseAddress else { return false }
        let p = n - Wire.headerLength - Self.tagLength
        let body = base + Wire.headerLength
        let counter = UnsafeRawBufferPointer(packet).loadBigEndianUInt64(at: Wire.offsetCounter)
        var outl: Int32 = 0
        let expected = nonce(counter)
        openTag.pointee.data = body + p
        guard nonceByParameter || EVP_CipherInit_ex2(opening, nil, nil, expected, 0, nil) == 1,
              EVP_CIPHER_CTX_set_params(opening, openParams) == 1,
              Self.run(opening, header: base, body: body, count: p)
        else {
            restart(opening, encrypting: false)
            return false
        }
        // A failed final step (the tag) ends the message in the provider too.
        guard EVP_CipherFinal_ex(opening, finalOutput, &outl) == 1 else {
            ERR_clear_error()
            return false
        }
        verifiedBase = base
        verifiedCount = n
        return true
    }

    /// The payload length of the datagram `open` just authenticated, once;
    /// nil for any other buffer.
    func take(_ packet: UnsafeMutableRawBufferPointer) -> Int? {
        guard keyed, let v = verifiedBase, v == packet.baseAddress, verifiedCount == packet.count else { return nil }
        verifiedBase = nil
        return packet.count - Wire.headerLength - Self.tagLength
    }
}

/// A `SuiteCipher` of an AEAD suite: everything is `AEADState`'s; the two
/// conforming types differ only in their algorithm and suite byte.
///
/// `verify` authenticates and decrypts in place (the AEAD's one operation,
/// the tag checked by OpenSSL in constant time) and `decrypt` returns the
/// length `verify` authenticated: the order "authenticate before use"
/// holds, as the opener neither reads the plaintext nor changes any state
/// before `verify` returned true, and a failed datagram's plaintext never
/// leaves its own receive buffer.
public protocol AEADSuiteCipher: SuiteCipher where Suite: AEADSuite {
    var state: AEADState { get }
}

extension AEADSuiteCipher {
    /// All 44 bytes (T(1) and the start of T(2)): a new session's datagram
    /// needs the key and the salt to check its tag.
    public static var verifyKeyMaterialLength: Int { Suite.keyMaterialLength }

    public func setKeys(material: UnsafeRawBufferPointer) throws {
        guard material.count == Self.keyMaterialLength else {
            unkey()
            throw CryptoError.keyLength(what: "session key material", expected: Self.keyMaterialLength,
                                        actual: material.count)
        }
        guard state.setKeys(material) else { throw CryptoError.failed("AEAD key setup") }
    }

    /// Keys opening (verification and decryption are one operation, so the
    /// verify material is all of it); sealing refuses until `setKeys`.
    public func setVerifyKey(material: UnsafeRawBufferPointer) -> Bool {
        guard material.count >= Self.keyMaterialLength else {
            unkey()
            return false
        }
        return state.setOpeningKeys(UnsafeRawBufferPointer(rebasing: material[0..<Self.keyMaterialLength]))
    }

    public func unkey() { state.unkey() }

    public var hasCipherKeys: Bool { state.keyed }

    public func seal(header: Header, payloadLength: Int, packet: UnsafeMutableRawBufferPointer) throws -> Int {
        try state.seal(header: header, suite: Suite.id, payloadLength: payloadLength,
                       maxPayload: Suite.maxPayloadLength, packet: packet)
    }

    public func verify(_ packet: UnsafeMutableRawBufferPointer) -> Bool { state.open(packet) }

    public func decrypt(_ packet: UnsafeMutableRawBufferPointer) -> Int? { state.take(packet) }
}

/// Suite 2: AES-256-GCM.
public final class AES256GCMCipher: AEADSuiteCipher {
    public typealias Suite = AES256GCMSuite
    public let state: AEADState

    public init(algorithms: CryptoAlgorithms) throws {
        state = try AEADState(algorithm: algorithms.aes256GCM, name: "AES-256-GCM", nonceByParameter: false)
    }
}

/// Suite 3: ChaCha20-Poly1305.
public final class ChaCha20Poly1305Cipher: AEADSuiteCipher {
    public typealias Suite = ChaCha20Poly1305Suite
    public let state: AEADState

    public init(algorithms: CryptoAlgorithms) throws {
        state = try AEADState(algorithm: algorithms.chacha20Poly1305, name: "ChaCha20-Poly1305",
                              nonceByParameter: true)
    }
}
