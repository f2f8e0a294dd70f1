import Shared

/// Where a session's keys come from. Today that is HKDF of the pre-shared
/// key (or a keypair's tunnel key) with the suite and session identifier (`SessionKeyDeriver`, PROTOCOL.md §3);
/// a public-key setup (keys agreed from the two ends' key pairs) is a
/// second conforming type. The cipher decides how much material it needs
/// and what each byte keys (`SuiteCipher.keyMaterialLength`).
///
/// A receiver asks for the material of any session a datagram names, which
/// anyone can send: a source must not allocate, and should make a prefix
/// (`verifyKeyMaterialLength`) cheaper than the whole.
public protocol SessionKeySource: AnyObject {
    /// Calls `body` with the first `length` bytes of `session`'s key
    /// material for the suite whose header byte is `suite` (each suite has
    /// its own keys), wiped when `body` returns; nil if they cannot be made.
    func withKeyMaterial<R>(of session: UInt64, suite: UInt8, length: Int,
                            _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R?
}

extension SessionKeySource {
    /// Keys `cipher` for verifying datagrams of `session` only; false (and
    /// `cipher` unkeyed) if that fails.
    public func setVerifyKey<C: SuiteCipher>(of session: UInt64, in cipher: C) -> Bool {
        let ok = withKeyMaterial(of: session, suite: C.Suite.id, length: C.verifyKeyMaterialLength) {
            cipher.setVerifyKey(material: $0)
        }
        if ok != true { cipher.unkey() }
        return ok == true
    }

    /// Keys `cipher` fully for `session`.
    public func setKeys<C: SuiteCipher>(of session: UInt64, in cipher: C) throws {
        let done: Void? = try withKeyMaterial(of: session, suite: C.Suite.id, length: C.keyMaterialLength) {
            try cipher.setKeys(material: $0)
        }
        if done == nil {
            cipher.unkey()
            throw CryptoError.failed("session key derivation")
        }
    }
}
