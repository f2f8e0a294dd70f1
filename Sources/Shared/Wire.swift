// Wire protocol v2: every constant of docs/PROTOCOL.md, named as there, in one place.
//
//  0     1     2     3     4        8              16             24             32
//  +-----+-----+-----+-----+--------+--------------+--------------+--------------+------------+
//  | ver |suite|type |flags| key id | session (BE) | counter (BE) | time ms (BE) | suite body |
//  +-----+-----+-----+-----+--------+--------------+--------------+--------------+------------+
//  \_______________ authenticated: inside the MAC (CBC) or the AEAD's associated data ______/

public enum Wire {
    /// The default cipher suite (AES-256-CBC + HMAC-SHA256). The CBC figures
    /// below (IV, MAC, overhead) are its; `SuiteID` lists every suite.
    public typealias Suite = CBCHMACSHA256Suite

    /// Protocol version 2, the only one spoken (1 is recognised to be refused).
    public static let version: UInt8 = 2
    /// The version byte of the former protocol: dropped as `old-version`.
    public static let oldVersion: UInt8 = 1

    public static let headerLength = 32
    public static let ivLength = Suite.ivLength
    public static let blockLength = Suite.blockLength
    public static let macLength = Suite.macLength
    /// The default suite's bytes besides padding: header + IV + MAC.
    public static let fixedOverhead = Suite.fixedOverhead  // 80
    /// The default suite's shortest datagram: one block of ciphertext.
    public static let minPacketLength = Suite.minPacketLength  // 96
    /// The longest datagram a receiver reads (the UDP length field's limit).
    public static let maxPacketLength = 65535
    /// The longest datagram a sender sends: IPv4's UDP limit.
    public static let maxDatagramLength = 65507
    /// The longest payload the default suite seals.
    public static let maxPayloadLength = Suite.maxPayloadLength

    // Offsets into the header.
    public static let offsetVersion = 0
    public static let offsetSuite = 1
    public static let offsetType = 2
    public static let offsetFlags = 3
    public static let offsetKeyId = 4
    public static let offsetSession = 8
    public static let offsetCounter = 16
    public static let offsetTimestamp = 24
    /// CBC: the IV, then the ciphertext.
    public static let offsetIV = headerLength  // 32
    public static let offsetCiphertext = Suite.payloadStart  // 48

    /// Flags bit 0: the payload is an Ethernet frame (TAP mode).
    public static let flagEthernet: UInt8 = 0x01
    /// Every flag bit a datagram may have set.
    public static let knownFlags: UInt8 = flagEthernet

    /// HKDF-SHA256 parameters (RFC 5869). The info string is followed by
    /// the suite byte and the sender's 8-byte big-endian session identifier.
    public static let hkdfSalt = Array("squtun protocol v2".utf8)
    public static let hkdfInfoPrefix = Array("squtun v2 session keys".utf8)
    /// Bytes after the prefix: suite (1) + session (8).
    public static let hkdfInfoSuffixLength = 9
    public static let keyLength = 32
    /// The default suite's HKDF output: K_enc (32) || K_mac (32) || K_iv (32).
    public static let derivedLength = 3 * keyLength
    /// The longest key material of any suite.
    public static let maxDerivedLength = derivedLength
    /// Length of the pre-shared key.
    public static let pskLength = 32

    /// Anti-replay bitmap (RFC 6479 style): 2048 bits; counters up to
    /// `replayWindow` behind the highest accepted one are checked bit by bit.
    public static let replayBitmapBits = 2048
    public static let replayWindow: UInt64 = UInt64(replayBitmapBits - 64)  // 1984

    /// Default time-skew limit (`-c`), seconds; 0 disables the check.
    public static let defaultSkewSeconds = 30

    /// Padded length of a payload (default suite): PKCS#7 always adds 1...16 bytes.
    @inlinable
    public static func paddedLength(_ payload: Int) -> Int {
        Suite.sealedPayloadLength(payload)
    }

    /// Datagram length for a payload of `payload` bytes (default suite).
    @inlinable
    public static func packetLength(payload: Int) -> Int {
        Suite.packetLength(payload: payload)
    }
}

/// Packet types (header byte 2).
public enum PacketType: UInt8, Sendable, CaseIterable {
    /// Carries one IP packet from the tun device.
    case data = 1
    /// Authenticated, empty: keeps NAT mappings open and announces roaming.
    case keepalive = 2
}

/// The cleartext header of a datagram. Parsing checks syntax only; nothing
/// in it may be trusted before the MAC or AEAD tag has been verified.
public struct Header: Equatable, Sendable {
    /// The suite byte (`SuiteID`'s raw value); a sealer writes its own.
    public var suite: UInt8
    public var type: PacketType
    public var flags: UInt8
    public var keyId: UInt32
    public var session: UInt64
    public var counter: UInt64
    public var timestampMs: UInt64

    public init(suite: UInt8 = SuiteID.defaultSuite.rawValue, type: PacketType, flags: UInt8 = 0, keyId: UInt32 = 0,
                session: UInt64, counter: UInt64, timestampMs: UInt64) {
        self.suite = suite
        self.type = type
        self.flags = flags
        self.keyId = keyId
        self.session = session
        self.counter = counter
        self.timestampMs = timestampMs
    }

    /// Why check 1 (1a–1e of PROTOCOL.md §6) refused a datagram; each maps
    /// to one drop reason. Nothing is changed by any of them.
    public enum SyntaxError: Error, Equatable, Sendable {
        case tooShort(Int)
        case tooLong(Int)
        /// Version 1: an older squtun.
        case oldVersion
        case unknownVersion(UInt8)
        /// The peer's suite byte (not this receiver's suite).
        case wrongSuite(UInt8)
        case unknownType(UInt8)
        case unknownFlags(UInt8)
        /// The peer's mode: true if it sends Ethernet frames.
        case wrongMode(peerEthernet: Bool)
        case unknownKey(UInt32)
        /// Not a length of the suite's datagrams.
        case badLength(Int)

        /// The drop reason counted for it.
        @inlinable
        public var dropReason: DropReason {
            switch self {
            case .oldVersion: .oldVersion
            case .wrongSuite: .wrongSuite
            case .wrongMode: .wrongMode
            case .unknownKey: .unknownKey
            default: .malformed
            }
        }
    }

    /// Check 1 of a whole datagram for a receiver of suite `S` in the mode
    /// `ethernet` whose only key id is `keyId` (0 between two
    /// point-to-point peers), in the protocol's order: 1a length and
    /// version, 1b suite, 1c type, flags and mode, 1d key id, 1e the
    /// suite's length rule. No key is touched, nothing allocated.
    @inlinable
    public static func parse<S: CipherSuite>(_ packet: UnsafeRawBufferPointer, suite: S.Type, ethernet: Bool = false,
                                             keyId: UInt32 = 0) -> Result<Header, SyntaxError> {
        let n = packet.count
        // 1a.
        if n < Wire.headerLength { return .failure(.tooShort(n)) }
        if n > Wire.maxPacketLength { return .failure(.tooLong(n)) }
        let v = packet[Wire.offsetVersion]
        if v != Wire.version { return .failure(v == Wire.oldVersion ? .oldVersion : .unknownVersion(v)) }
        // 1b.
        let s = packet[Wire.offsetSuite]
        if s != S.id { return .failure(.wrongSuite(s)) }
        // 1c.
        let t = packet[Wire.offsetType]
        guard let type = PacketType(rawValue: t) else { return .failure(.unknownType(t)) }
        let f = packet[Wire.offsetFlags]
        if f & ~Wire.knownFlags != 0 { return .failure(.unknownFlags(f)) }
        let peerEthernet = f & Wire.flagEthernet != 0
        if peerEthernet != ethernet { return .failure(.wrongMode(peerEthernet: peerEthernet)) }
        // 1d.
        let k = packet.loadBigEndianUInt32(at: Wire.offsetKeyId)
        if k != keyId { return .failure(.unknownKey(k)) }
        // 1e.
        if !S.isWellFormedLength(n) { return .failure(.badLength(n)) }
        return .success(Header(
            suite: s, type: type, flags: f, keyId: k,
            session: packet.loadBigEndianUInt64(at: Wire.offsetSession),
            counter: packet.loadBigEndianUInt64(at: Wire.offsetCounter),
            timestampMs: packet.loadBigEndianUInt64(at: Wire.offsetTimestamp)))
    }

    /// Check 1 for a receiver of the default suite in TUN mode, point-to-point.
    @inlinable
    public static func parse(_ packet: UnsafeRawBufferPointer) -> Result<Header, SyntaxError> {
        parse(packet, suite: Wire.Suite.self)
    }

    /// Writes the 32 header bytes at the start of `out`.
    @inlinable
    public func write(to out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Wire.headerLength)
        out[Wire.offsetVersion] = Wire.version
        out[Wire.offsetSuite] = suite
        out[Wire.offsetType] = type.rawValue
        out[Wire.offsetFlags] = flags
        out.storeBigEndian(keyId, at: Wire.offsetKeyId)
        out.storeBigEndian(session, at: Wire.offsetSession)
        out.storeBigEndian(counter, at: Wire.offsetCounter)
        out.storeBigEndian(timestampMs, at: Wire.offsetTimestamp)
    }
}

extension UnsafeRawBufferPointer {
    @inlinable
    public func loadBigEndianUInt64(at offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    @inlinable
    public func loadBigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inlinable
    public func loadBigEndianUInt16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable
    public func storeBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
    }
}
