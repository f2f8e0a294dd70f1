// Wire protocol v1: every constant of docs/PROTOCOL.md, named as there, in one place.
//
//  0      1      2      4              12             20             28        44          len-32   len
//  +------+------+------+--------------+--------------+--------------+---------+-----------+--------+
//  | ver  | type | rsvd | session (BE) | counter (BE) | time ms (BE) |   IV    | ciphertext|  MAC   |
//  +------+------+------+--------------+--------------+--------------+---------+-----------+--------+
//  \___________________________ authenticated by MAC (HMAC-SHA256) ____________________/

public enum Wire {
    /// The cipher suite of protocol version 1, the only one: it owns the
    /// layout behind the header (IV, padding, MAC; see CipherSuite.swift).
    /// The names below are PROTOCOL.md's for this suite's figures.
    public typealias Suite = CBCHMACSHA256Suite

    /// Protocol/suite version 1: AES-256-CBC + HMAC-SHA256, encrypt-then-MAC.
    public static let version: UInt8 = Suite.version

    public static let headerLength = 28
    public static let ivLength = Suite.ivLength
    public static let blockLength = Suite.blockLength
    public static let macLength = Suite.macLength
    /// Bytes added to a payload besides padding: header + IV + MAC.
    public static let fixedOverhead = Suite.fixedOverhead  // 76
    /// The shortest valid datagram: one block of ciphertext (an empty payload).
    public static let minPacketLength = Suite.minPacketLength  // 92
    /// The longest datagram a receiver reads (the UDP length field's limit).
    public static let maxPacketLength = 65535
    /// The longest payload a sender seals: its datagram still fits IPv4's 65507-byte UDP limit.
    public static let maxPayloadLength = Suite.maxPayloadLength

    // Offsets into the header.
    public static let offsetVersion = 0
    public static let offsetType = 1
    public static let offsetReserved = 2
    public static let offsetSession = 4
    public static let offsetCounter = 12
    public static let offsetTimestamp = 20
    public static let offsetIV = headerLength  // 28
    public static let offsetCiphertext = Suite.payloadStart  // 44

    /// HKDF-SHA256 parameters (RFC 5869). The info string is followed by the
    /// sender's 8-byte big-endian session identifier.
    public static let hkdfSalt = Array("squtun protocol v1".utf8)
    public static let hkdfInfoPrefix = Array("squtun v1 session keys".utf8)
    /// HKDF output: K_enc (32) || K_mac (32) || K_iv (32).
    public static let keyLength = 32
    public static let derivedLength = 3 * keyLength
    /// Length of the pre-shared key.
    public static let pskLength = 32

    /// Anti-replay bitmap (RFC 6479 style): 2048 bits; counters up to
    /// `replayWindow` behind the highest accepted one are checked bit by bit.
    public static let replayBitmapBits = 2048
    public static let replayWindow: UInt64 = UInt64(replayBitmapBits - 64)  // 1984

    /// Default time-skew limit (`-c`), seconds; 0 disables the check.
    public static let defaultSkewSeconds = 30

    /// Padded length of a payload: PKCS#7 always adds 1...16 bytes.
    @inlinable
    public static func paddedLength(_ payload: Int) -> Int {
        Suite.sealedPayloadLength(payload)
    }

    /// Datagram length for a payload of `payload` bytes.
    @inlinable
    public static func packetLength(payload: Int) -> Int {
        Suite.packetLength(payload: payload)
    }
}

/// Packet types (header byte 1).
public enum PacketType: UInt8, Sendable, CaseIterable {
    /// Carries one IP packet from the tun device.
    case data = 1
    /// Authenticated, empty: keeps NAT mappings open and announces roaming.
    case keepalive = 2
}

/// The cleartext header of a datagram. Parsing checks syntax only; nothing
/// in it may be trusted before the MAC has been verified.
public struct Header: Equatable, Sendable {
    public var type: PacketType
    public var session: UInt64
    public var counter: UInt64
    public var timestampMs: UInt64

    public init(type: PacketType, session: UInt64, counter: UInt64, timestampMs: UInt64) {
        self.type = type
        self.session = session
        self.counter = counter
        self.timestampMs = timestampMs
    }

    /// Why a datagram is malformed (checked before the MAC, changes no state).
    public enum SyntaxError: Error, Equatable, Sendable {
        case tooShort(Int)
        case tooLong(Int)
        case notBlockAligned(Int)
        case unknownVersion(UInt8)
        case unknownType(UInt8)
        case reservedNotZero(UInt16)
    }

    /// Checks the length rules and header syntax of a whole datagram.
    @inlinable
    public static func parse(_ packet: UnsafeRawBufferPointer) -> Result<Header, SyntaxError> {
        let n = packet.count
        if n < Wire.minPacketLength { return .failure(.tooShort(n)) }
        if n > Wire.maxPacketLength { return .failure(.tooLong(n)) }
        if !Wire.Suite.isWellFormedLength(n) { return .failure(.notBlockAligned(n)) }
        let v = packet[Wire.offsetVersion]
        if v != Wire.version { return .failure(.unknownVersion(v)) }
        let t = packet[Wire.offsetType]
        guard let type = PacketType(rawValue: t) else { return .failure(.unknownType(t)) }
        let r = packet.loadBigEndianUInt16(at: Wire.offsetReserved)
        if r != 0 { return .failure(.reservedNotZero(r)) }
        return .success(Header(
            type: type,
            session: packet.loadBigEndianUInt64(at: Wire.offsetSession),
            counter: packet.loadBigEndianUInt64(at: Wire.offsetCounter),
            timestampMs: packet.loadBigEndianUInt64(at: Wire.offsetTimestamp)))
    }

    /// Writes the 28 header bytes at the start of `out`.
    @inlinable
    public func write(to out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Wire.headerLength)
        out[Wire.offsetVersion] = Wire.version
        out[Wire.offsetType] = type.rawValue
        out.storeBigEndian(UInt16(0), at: Wire.offsetReserved)
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
