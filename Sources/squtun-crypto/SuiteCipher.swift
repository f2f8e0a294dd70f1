import Shared

/// The cryptographic half of a cipher suite: one session's keyed state that
/// seals and opens datagrams laid out as its `Suite` says. `PacketCipher`
/// (AES-256-CBC + HMAC-SHA256) is the suite of protocol version 1; an AEAD
/// suite is a second conforming type with its own `CipherSuite`.
///
/// `SuiteSealer` and `SuiteOpener` are generic over it; their per-packet
/// entries for the suite in use are compiled for it in this module (see
/// `SuiteOpener`): no protocol look-up, no allocation per datagram.
public protocol SuiteCipher: AnyObject {
    associatedtype Suite: CipherSuite

    /// Allocates the state once; no keys yet.
    init(algorithms: CryptoAlgorithms) throws

    /// Bytes of key material one session needs (from a `SessionKeySource`).
    static var keyMaterialLength: Int { get }
    /// How much of the key material's start `setVerifyKey` needs: a
    /// receiver checks a datagram of an unknown session with only that much.
    static var verifyKeyMaterialLength: Int { get }

    /// Keys everything from `keyMaterialLength` bytes (copied; the caller wipes its copy).
    func setKeys(material: UnsafeRawBufferPointer) throws
    /// Keys verification only from the first `verifyKeyMaterialLength`
    /// bytes; `seal` and `decrypt` refuse until `setKeys`.
    func setVerifyKey(material: UnsafeRawBufferPointer) -> Bool
    /// Refuses every operation until keyed again.
    func unkey()
    /// True once `setKeys` succeeded.
    var hasCipherKeys: Bool { get }

    /// Seals in place: the payload sits at `packet[Suite.payloadStart...]`;
    /// returns the datagram length.
    func seal(header: Header, payloadLength: Int, packet: UnsafeMutableRawBufferPointer) throws -> Int
    /// Authenticates a whole datagram (before anything else is done with it).
    func verify(_ packet: UnsafeRawBufferPointer) -> Bool
    /// Decrypts a verified datagram in place: the payload ends up at
    /// `packet[Suite.payloadStart...]`, the `Suite.headroom` bytes in front
    /// of it free; returns its length, or nil if it is malformed.
    func decrypt(_ packet: UnsafeMutableRawBufferPointer) -> Int?
}
