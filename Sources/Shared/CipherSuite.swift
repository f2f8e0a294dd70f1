/// What a cipher suite fixes about a datagram's layout: where the payload
/// sits behind the 32-byte header, what sealing adds around it, which
/// lengths can be datagrams at all, and how many bytes in front of an
/// opened payload the receiver may overwrite. The header itself is the same
/// for every suite; its suite byte names the suite (`id`).
///
/// Everything here is static: code that sizes buffers, checks lengths or
/// computes MTUs names a suite type and the compiler folds its figures into
/// constants; nothing is looked up per packet. `SuiteID` is the runtime
/// name of a suite (options, logs, the worker's configuration), used once
/// at start to pick the compiled code. The cryptographic half (keys, seal,
/// verify, decrypt) lives in squtun-crypto (`SuiteCipher`), whose
/// conforming type names its `CipherSuite`.
public protocol CipherSuite {
    /// The header's suite byte for datagrams of this suite.
    static var id: UInt8 { get }
    /// Bytes between the end of the header and the first payload byte
    /// (CBC: the IV; AEAD: none).
    static var payloadOffset: Int { get }
    /// Bytes after the (padded) payload (CBC: the MAC; AEAD: the tag).
    static var trailerLength: Int { get }
    /// Bytes directly in front of an opened payload that the opener no
    /// longer needs, so whoever takes the payload may write there (the
    /// coalescer puts a virtio header in them). CBC: the IV; AEAD: the header.
    static var headroom: Int { get }
    /// The shortest datagram of this suite.
    static var minPacketLength: Int { get }
    /// The longest payload a sender seals.
    static var maxPayloadLength: Int { get }
    /// Bytes of key material one session of this suite needs (HKDF's L).
    static var keyMaterialLength: Int { get }
    /// The payload's length once sealed (padding included), between
    /// `payloadOffset` and the trailer.
    static func sealedPayloadLength(_ payload: Int) -> Int
    /// Whether a received length `n` (already within the header's length
    /// and the UDP limit) can be a datagram of this suite (check 1e).
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

/// Suite 1, the default: AES-256-CBC with PKCS#7 padding and a per-packet
/// IV in the datagram, then HMAC-SHA256 over header, IV and ciphertext
/// (encrypt-then-MAC). PROTOCOL.md §4-§5.
public enum CBCHMACSHA256Suite: CipherSuite {
    public static let id: UInt8 = 1
    public static let ivLength = 16
    public static let blockLength = 16
    public static let macLength = 32
    public static let payloadOffset = ivLength
    public static let trailerLength = macLength
    /// The IV: consumed by decryption, free afterwards.
    public static let headroom = ivLength
    /// Header + IV + MAC: what a datagram adds besides padding (80).
    public static let fixedOverhead = Wire.headerLength + ivLength + macLength
    /// One block of ciphertext: an empty payload padded (96).
    public static let minPacketLength = fixedOverhead + blockLength
    /// Its datagram still fits IPv4's 65507-byte UDP limit.
    public static let maxPayloadLength = 65423
    /// K_enc ‖ K_mac ‖ K_iv.
    public static let keyMaterialLength = 3 * Wire.keyLength

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

/// The layout shared by the AEAD suites (RFC 5116): ciphertext as long as
/// the payload, right behind the header, then a 16-byte tag; the header is
/// the associated data. Datagram = 48 + payload.
public protocol AEADSuite: CipherSuite {}

extension AEADSuite {
    @inlinable public static var payloadOffset: Int { 0 }
    @inlinable public static var tagLength: Int { 16 }
    @inlinable public static var trailerLength: Int { tagLength }
    /// The header: once the tag has verified, nothing in front of the
    /// payload is needed any more.
    @inlinable public static var headroom: Int { Wire.headerLength }
    /// Header + tag (48).
    @inlinable public static var fixedOverhead: Int { Wire.headerLength + tagLength }
    /// An empty payload (a keepalive).
    @inlinable public static var minPacketLength: Int { fixedOverhead }
    /// Its datagram still fits IPv4's 65507-byte UDP limit (65459).
    @inlinable public static var maxPayloadLength: Int { Wire.maxDatagramLength - fixedOverhead }
    /// K (32) ‖ N_salt (12).
    @inlinable public static var keyMaterialLength: Int { Wire.keyLength + nonceSaltLength }
    @inlinable public static var nonceLength: Int { 12 }
    @inlinable public static var nonceSaltLength: Int { 12 }

    @inlinable
    public static func sealedPayloadLength(_ payload: Int) -> Int { payload }

    @inlinable
    public static func isWellFormedLength(_ n: Int) -> Bool { n >= minPacketLength }

    public static func largestPayload(fittingDatagram datagramBytes: Int) -> Int? {
        guard datagramBytes >= minPacketLength else { return nil }
        return min(datagramBytes - fixedOverhead, maxPayloadLength)
    }
}

/// Suite 2: AES-256-GCM.
public enum AES256GCMSuite: AEADSuite {
    public static let id: UInt8 = 2
}

/// Suite 3: ChaCha20-Poly1305 (RFC 8439).
public enum ChaCha20Poly1305Suite: AEADSuite {
    public static let id: UInt8 = 3
}

/// A suite by its runtime name: the header byte and the name used by
/// `--cipher`, the worker's configuration and log lines. Chosen once at
/// start; the data path then runs code compiled for the suite's types.
public enum SuiteID: UInt8, CaseIterable, Sendable {
    case aes256CBCHMACSHA256 = 1
    case aes256GCM = 2
    case chacha20Poly1305 = 3

    public static let defaultSuite = SuiteID.aes256CBCHMACSHA256

    /// The name as `--cipher` takes it and logs print it.
    public var name: String {
        switch self {
        case .aes256CBCHMACSHA256: "aes-256-cbc-hmac-sha256"
        case .aes256GCM: "aes-256-gcm"
        case .chacha20Poly1305: "chacha20-poly1305"
        }
    }

    public init?(name: String) {
        guard let s = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = s
    }

    /// Every name, in suite order, for help and error lines.
    public static var names: [String] { allCases.map(\.name) }

    /// A suite byte as a log line names it: the name, or "unknown suite N".
    public static func describe(_ byte: UInt8) -> String {
        SuiteID(rawValue: byte)?.name ?? "unknown suite \(byte)"
    }

    /// The layout type of this suite.
    public var layout: any CipherSuite.Type {
        switch self {
        case .aes256CBCHMACSHA256: CBCHMACSHA256Suite.self
        case .aes256GCM: AES256GCMSuite.self
        case .chacha20Poly1305: ChaCha20Poly1305Suite.self
        }
    }
}
