import Shared

/// The cryptographic half of a cipher suite: one session's keyed state that
/// seals and opens datagrams laid out as its `Suite` says. `PacketCipher`
/// is suite 1 (AES-256-CBC + HMAC-SHA256); `AES256GCMCipher` and
/// `ChaCha20Poly1305Cipher` are the AEAD suites 2 and 3.
///
/// `SuiteSealer` and `SuiteOpener` are generic over it. Each conforming
/// type also carries the per-packet entries of both (`open(_:with:...)`,
/// `seal(...)`), compiled in this module for that type: code generic over
/// the cipher elsewhere (the data path's `Device`) calls them as protocol
/// requirements, which become direct calls into specialised code once that
/// code is specialised for a suite. No protocol look-up, no allocation per
/// datagram.
///
/// Authenticate before use, for every suite: `verify` must pass before
/// `decrypt`. CBC verifies the MAC over the ciphertext and decrypts later;
/// an AEAD checks its tag and decrypts in one operation, so its `verify`
/// does both in place in the datagram's own buffer (nothing outside the
/// buffer is written, no state of the session changes) and its `decrypt`
/// only hands out the length of what `verify` authenticated. Either way
/// the opener uses no plaintext and changes no state before `verify` said yes.
public protocol SuiteCipher: AnyObject {
    associatedtype Suite: CipherSuite

    /// Allocates the state once; no keys yet.
    init(algorithms: CryptoAlgorithms) throws

    /// How much of the key material's start `setVerifyKey` needs: a
    /// receiver checks a datagram of an unknown session with only that much.
    static var verifyKeyMaterialLength: Int { get }

    /// Keys everything from `Suite.keyMaterialLength` bytes (copied; the caller wipes its copy).
    func setKeys(material: UnsafeRawBufferPointer) throws
    /// Keys verification from the first `verifyKeyMaterialLength` bytes;
    /// `decrypt` refuses until `setKeys` unless that was all of the
    /// material (`hasCipherKeys` says); `seal` refuses until `setKeys`
    /// (a receiver never seals, and a key setup per forged datagram is a
    /// cost anyone can cause).
    func setVerifyKey(material: UnsafeRawBufferPointer) -> Bool
    /// Refuses every operation until keyed again.
    func unkey()
    /// True once every key `decrypt` needs is set (after `setKeys`, and for
    /// an AEAD after `setVerifyKey` too).
    var hasCipherKeys: Bool { get }

    /// Seals in place: the payload sits at `packet[Suite.payloadStart...]`;
    /// writes the header (with this suite's byte); returns the datagram length.
    func seal(header: Header, payloadLength: Int, packet: UnsafeMutableRawBufferPointer) throws -> Int
    /// Authenticates a whole datagram before anything else is done with it
    /// (an AEAD decrypts it in place at the same time; see the type's comment).
    func verify(_ packet: UnsafeMutableRawBufferPointer) -> Bool
    /// Decrypts a verified datagram in place: the payload ends up at
    /// `packet[Suite.payloadStart...]`, the `Suite.headroom` bytes in front
    /// of it free; returns its length, or nil if it is malformed.
    func decrypt(_ packet: UnsafeMutableRawBufferPointer) -> Int?

    /// `opener.open`, compiled here for this suite (see the type's comment).
    static func open(_ packet: UnsafeMutableRawBufferPointer, with opener: SuiteOpener<Self, SessionKeyDeriver>,
                     fromPeer: Bool, nowMs: UInt64, monotonicMs: UInt64) -> OpenOutcome
    /// `sealer.seal`, compiled here for this suite.
    static func seal(_ packet: UnsafeMutableRawBufferPointer, with sealer: SuiteSealer<Self>, type: PacketType,
                     payloadLength: Int, nowMs: UInt64) throws -> Int
}

extension SuiteCipher {
    /// Bytes of key material one session needs (from a `SessionKeySource`).
    @inlinable
    public static var keyMaterialLength: Int { Suite.keyMaterialLength }

    // The per-packet entries: each conforming type's witness is compiled
    // here with `Self` known, so the checks are specialised for its suite.

    public static func open(_ packet: UnsafeMutableRawBufferPointer, with opener: SuiteOpener<Self, SessionKeyDeriver>,
                            fromPeer: Bool, nowMs: UInt64, monotonicMs: UInt64) -> OpenOutcome {
        opener.check(packet, fromPeer: fromPeer, nowMs: nowMs, monotonicMs: monotonicMs)
    }

    public static func seal(_ packet: UnsafeMutableRawBufferPointer, with sealer: SuiteSealer<Self>, type: PacketType,
                            payloadLength: Int, nowMs: UInt64) throws -> Int {
        try sealer.sealNext(type: type, payloadLength: payloadLength, packet: packet, nowMs: nowMs)
    }
}
