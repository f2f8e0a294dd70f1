import COpenSSL
import Shared

/// A client's key id in server mode (PROTOCOL.md, "Server mode: key ids"):
/// the big-endian number of the first 4 bytes of
/// SHA-256("squtun v2 key id" || identifier), 1 in place of 0 (key id 0
/// belongs to point-to-point peers). Both ends compute it from the
/// identifier alone, so nothing but the name has to be agreed on; the
/// server computes it once per client file (at start, on SIGHUP), never
/// per datagram.
public enum ClientKeyID {
    public static let label = "squtun v2 key id"

    /// The key id of `name`, an identifier (`ClientID.isValid`): the caller
    /// checks the name; any bytes give a key id.
    public static func keyId(for name: String) -> UInt32 {
        fromDigestPrefix(sha256(Array(label.utf8) + Array(name.utf8)))
    }

    /// The key id from the digest's first 4 bytes: 0 becomes 1.
    static func fromDigestPrefix(_ digest: [UInt8]) -> UInt32 {
        let n = digest[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return n == 0 ? 1 : n
    }

    /// SHA-256 through the same SHA256_* calls as the HMAC (HMACKey.swift);
    /// they cannot fail for a message in memory, checked all the same.
    public static func sha256(_ message: [UInt8]) -> [UInt8] {
        var ctx = SHA256_CTX()
        var digest = [UInt8](repeating: 0, count: 32)
        let ok = SHA256_Init(&ctx) == 1 && message.withUnsafeBytes { SHA256_Update(&ctx, $0.baseAddress, $0.count) } == 1
            && SHA256_Final(&digest, &ctx) == 1
        precondition(ok, "SHA-256 of an in-memory message failed")
        return digest
    }
}
