/// What a cipher suite fixes about a datagram's layout: where the payload
/// sits behind the 28-byte header, what sealing adds around it, which
/// lengths can be datagrams at all, and how many bytes in front of an
/// opened payload the receiver may overwrite. The header itself (version,
/// type, session, counter, time) is the same for every suite; its version
/// byte names the suite.
///
/// Everything here is static: code that sizes buffers, checks lengths or
/// computes MTUs names a suite type (today `Wire.Suite`) and the compiler
/// folds its figures into constants; nothing is looked up per packet. The
/// cryptographic half (keys, seal, verify, decrypt) lives in squtun-crypto
/// (`SuiteCipher`), whose conforming type names its `CipherSuite`.
public protocol CipherSuite {
    /// The header's version byte for datagrams of this suite.
    static var version: UInt8 { get }
    /// Bytes between the end of the header and the first payload byte
    /// (CBC: the IV).
    static var payloadOffset: Int { get }
    /// Bytes after the (padded) payload (CBC: the MAC).
    static var trailerLength: Int { get }
    /// Bytes directly in front of an opened payload that the opener no
    /// longer needs, so whoever takes the payload may write there (the
    /// coalescer puts a virtio header in them). CBC: the IV.
    static var headroom: Int { get }
    /// The shortest datagram of this suite.
    static var minPacketLength: Int { get }
    /// The longest payload a sender seals.
    static var maxPayloadLength: Int { get }
    /// The payload's length once sealed (padding included), between
    /// `payloadOffset` and the trailer.
    static func sealedPayloadLength(_ payload: Int) -> Int
    /// Whether a received length `n` (already within the minimum and the
    /// UDP limit) can be a datagram of this suite.
    static func isWellFormedLength(_ n: Int) -> Bool
    /// The largest payload whose datagram is at most `datagramBytes` long,
    /// or nil if not even an empty one fits.
    static func largestPayload(fittingDatagram datagramBytes: Int) -> Int?
}

extension CipherSuite {
    /// Where the payload starts in a datagram.
    @inlinable
    public static var payloadStart: Int { Wire.headerLength + payloadOffset }

    /// The datagram length for a payload of `payload` bytes.
    @inlinable
    public static func packetLength(payload: Int) -> Int {
        payloadStart + sealedPayloadLength(payload) + trailerLength
    }
}

/// Protocol version 1: AES-256-CBC with PKCS#7 padding and a per-packet IV
/// in the datagram, then HMAC-SHA256 over header, IV and ciphertext
/// (encrypt-then-MAC). PROTOCOL.md §4-§5.
public enum CBCHMACSHA256Suite: CipherSuite {
    public static let version: UInt8 = 1
    public static let ivLength = 16
    public static let blockLength = 16
    public static let macLength = 32
    public static let payloadOffset = ivLength
    public static let trailerLength = macLength
    /// The IV: consumed by decryption, free afterwards.
    public static let headroom = ivLength
    /// Header + IV + MAC: what a datagram adds besides padding (76).
    public static let fixedOverhead = Wire.headerLength + ivLength + macLength
    /// One block of ciphertext: an empty payload padded (92).
    public static let minPacketLength = fixedOverhead + blockLength
    /// Its datagram still fits IPv4's 65507-byte UDP limit.
    public static let maxPayloadLength = 65423

    /// PKCS#7 always adds 1...16 bytes.
    @inlinable
    public static func sealedPayloadLength(_ payload: Int) -> Int {
        (payload / blockLength + 1) * blockLength
    }

    @inlinable
    public static func isWellFormedLength(_ n: Int) -> Bool {
        n >= minPacketLength && (n - fixedOverhead) % blockLength == 0
    }

    public static func largestPayload(fittingDatagram datagramBytes: Int) -> Int? {
        guard datagramBytes >= minPacketLength else { return nil }
        // packetLength(p) = fixedOverhead + (p / block + 1) * block, so the
        // best p fills the last whole block with 15 bytes + 1 byte of padding.
        let blocks = (datagramBytes - fixedOverhead) / blockLength
        return min(blocks * blockLength - 1, maxPayloadLength)
    }
}
