import Shared

/// Seals datagrams of this process's own session (PROTOCOL.md §5), in place
/// in the caller's buffer, allocating nothing per datagram. Generic over the
/// cipher suite; `seal` goes through the cipher's `seal(_:with:...)`, so
/// this module compiles it for each suite (see `SuiteCipher`).
public final class SuiteSealer<Cipher: SuiteCipher> {
    /// The layout of the datagrams it seals.
    public typealias Suite = Cipher.Suite
    public let session: UInt64
    /// The key id every header carries: 0 between point-to-point peers, the
    /// client's key id in server mode (both directions).
    public let keyId: UInt32
    /// TAP mode: every header carries flags bit 0 (the payload is an
    /// Ethernet frame); false: no flag, IP packets.
    public let ethernet: Bool
    private let cipher: Cipher
    private var nextCounter: UInt64 = 0

    /// The counter of the next datagram.
    public var counter: UInt64 { nextCounter }

    /// Keys a new cipher with `session`'s keys from `keySource`. The keys
    /// live on inside the cipher; the source wipes its copy.
    public init<Keys: SessionKeySource>(algorithms: CryptoAlgorithms, keySource: Keys, session: UInt64,
                                        keyId: UInt32 = 0, ethernet: Bool = false) throws {
        self.session = session
        self.keyId = keyId
        self.ethernet = ethernet
        cipher = try Cipher(algorithms: algorithms)
        try keySource.setKeys(of: session, in: cipher)
    }

    /// The same with the keys of the pre-shared key `psk`.
    public convenience init(algorithms: CryptoAlgorithms, psk: SecretBytes, session: UInt64, keyId: UInt32 = 0,
                            ethernet: Bool = false) throws {
        try self.init(algorithms: algorithms, keySource: SessionKeyDeriver(psk: psk), session: session, keyId: keyId,
                      ethernet: ethernet)
    }

    /// The payload sits at `packet[Cipher.Suite.payloadStart...]`; returns the datagram length.
    /// Through the cipher's `seal(_:with:...)` entry, compiled for its suite
    /// in this module (see `SuiteCipher`), whoever calls it.
    public func seal(type: PacketType, payloadLength: Int, packet: UnsafeMutableRawBufferPointer,
                     nowMs: UInt64) throws -> Int {
        try Cipher.seal(packet, with: self, type: type, payloadLength: payloadLength, nowMs: nowMs)
    }

    @inline(__always)
    func sealNext(type: PacketType, payloadLength: Int, packet: UnsafeMutableRawBufferPointer,
                     nowMs: UInt64) throws -> Int {
        let header = Header(suite: Suite.id, type: type, flags: ethernet ? Wire.flagEthernet : 0, keyId: keyId,
                            session: session, counter: nextCounter, timestampMs: nowMs)
        let n = try cipher.seal(header: header, payloadLength: payloadLength, packet: packet)
        nextCounter += 1
        return n
    }
}

/// The sealer of the default suite.
public typealias Sealer = SuiteSealer<PacketCipher>
