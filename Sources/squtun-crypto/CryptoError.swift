import COpenSSL
import Shared

/// Everything the crypto layer can refuse. OpenSSL failures carry the
/// algorithm/operation that failed and OpenSSL's own error string
/// (`ERR_get_error` + `ERR_error_string_n`); `description` is one line.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `OPENSSL_init_crypto` failed.
    case initialization(openssl: String)
    /// `EVP_*_fetch` could not find `algorithm` (e.g. "AES-256-CBC", "HMAC", "HKDF").
    case fetch(algorithm: String, openssl: String)
    /// An OpenSSL call failed: `operation` names the algorithm and step
    /// (e.g. "AES-256-CBC encrypt", "HKDF-SHA256 derive").
    case operation(String, openssl: String)
    /// A key of the wrong length was given (`what`: "PSK", "HKDF output", ...).
    case keyLength(what: String, expected: Int, actual: Int)
    /// `seal` was asked to carry more than `Wire.maxPayloadLength` bytes (or a negative length).
    case payloadTooLong(Int)
    /// The packet buffer cannot hold the sealed datagram.
    case bufferTooSmall(needed: Int, available: Int)
    /// `seal` was called before `setKeys`.
    case noKeys
    /// X25519 with the peer's public key gives all zeros: a low-order
    /// point, not a real public key (RFC 7748 §6.1).
    case lowOrderPeerKey
    /// The peer's public key is this host's own.
    case peerKeyIsOwn

    public var description: String {
        switch self {
        case .initialization(let e):
            return "OpenSSL initialisation failed: \(e)"
        case .fetch(let alg, let e):
            return "OpenSSL cannot provide \(alg): \(e)"
        case .operation(let op, let e):
            return "\(op) failed: \(e)"
        case .keyLength(let what, let expected, let actual):
            return "\(what) must be \(expected) bytes, got \(actual)"
        case .payloadTooLong(let n):
            return "payload of \(n) bytes cannot be sealed (0...\(Wire.maxPayloadLength))"
        case .bufferTooSmall(let needed, let available):
            return "packet buffer too small: \(needed) bytes needed, \(available) available"
        case .noKeys:
            return "packet cipher used before keys were set"
        case .lowOrderPeerKey:
            return "the peer's public key is a low-order point (X25519 gives all zeros): it is not a real public key; "
                + "ask the peer for its .pub (squtun pubkey)"
        case .peerKeyIsOwn:
            return "the peer's public key is this host's own public key: give each end the OTHER end's .pub"
        }
    }

    /// Pops OpenSSL's error queue for this thread: the oldest error's string,
    /// and clears the rest.
    static func opensslError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        if code == 0 { return "no OpenSSL error queued" }
        var buf = [CChar](repeating: 0, count: 256)
        return buf.withUnsafeMutableBufferPointer { b -> String in
            ERR_error_string_n(code, b.baseAddress, b.count)
            return String(cString: b.baseAddress!)
        }
    }

    /// `.operation(op, openssl: <queued error>)`.
    static func failed(_ op: String) -> CryptoError {
        .operation(op, openssl: opensslError())
    }
}
