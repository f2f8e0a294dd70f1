import Shared

/// Seals datagrams of this process's own session (PROTOCOL.md §5), in place
/// in the caller's buffer, allocating nothing per datagram. Generic over the
/// cipher suite; `seal` of the suite in use (`Sealer`) is declared for it
/// below, so this module compiles it for that suite (see `SuiteOpener`).
public final class SuiteSealer<Cipher: SuiteCipher> {
    /// The layout of the datagrams it seals.
    public typealias Suite = Cipher.Suite
    public let session: UInt64
    private let cipher: Cipher
    private var nextCounter: UInt64 = 0

    /// The counter of the next datagram.
    public var counter: UInt64 { nextCounter }

    /// Keys a new cipher with `session`'s keys from `keySource`. The keys
    /// live on inside the cipher; the source wipes its copy.
    public init<Keys: SessionKeySource>(algorithms: CryptoAlgorithms, keySource: Keys, session: UInt64) throws {
        self.session = session
        cipher = try Cipher(algorithms: algorithms)
        try keySource.setKeys(of: session, in: cipher)
    }

    /// The same with the keys of the pre-shared key `psk`.
    public convenience init(algorithms: CryptoAlgorithms, psk: SecretBytes, session: UInt64) throws {
        try self.init(algorithms: algorithms, keySource: SessionKeyDeriver(psk: psk), session: session)
    }

    /// The payload sits at `packet[Cipher.Suite.payloadStart...]`; returns the datagram length.
    public func seal(type: PacketType, payloadLength: Int, packet: UnsafeMutableRawBufferPointer,
                     nowMs: UInt64) throws -> Int {
        try sealNext(type: type, payloadLength: payloadLength, packet: packet, nowMs: nowMs)
    }

    @inline(__always)
    func sealNext(type: PacketType, payloadLength: Int, packet: UnsafeMutableRawBufferPointer,
                     nowMs: UInt64) throws -> Int {
        let header = Header(suite: Suite.id, type: type, session: session, counter: nextCounter, timestampMs: nowMs)
        let n = try cipher.seal(header: header, payloadLength: payloadLength, packet: packet)
        nextCounter += 1
        return n
    }
}

extension SuiteSealer where Cipher == PacketCipher {
    /// `seal`, specialised for the default suite.
    public func seal(type: PacketType, payloadLength: Int, packet: UnsafeMutableRawBufferPointer,
                     nowMs: UInt64) throws -> Int {
        try sealNext(type: type, payloadLength: payloadLength, packet: packet, nowMs: nowMs)
    }
}

extension SuiteSealer where Cipher == AES256GCMCipher {
    /// `seal`, specialised for AES-256-GCM.
    public func seal(type: PacketType, payloadLength: Int, packet: UnsafeMutableRawBufferPointer,
                     nowMs: UInt64) throws -> Int {
        try sealNext(type: type, payloadLength: payloadLength, packet: packet, nowMs: nowMs)
    }
}

extension SuiteSealer where Cipher == ChaCha20Poly1305Cipher {
    /// `seal`, specialised for ChaCha20-Poly1305.
    public func seal(type: PacketType, payloadLength: Int, packet: UnsafeMutableRawBufferPointer,
                     nowMs: UInt64) throws -> Int {
        try sealNext(type: type, payloadLength: payloadLength, packet: packet, nowMs: nowMs)
    }
}

/// The sealer of the default suite.
public typealias Sealer = SuiteSealer<PacketCipher>
