import Shared
import SqutunSystem
#if canImport(Glibc)
import Glibc
#endif

/// What a key file (or a public key's text) holds. Each kind is one line:
///
///     PSK          64 hex digits                                   (NAME.key of squtun genkey)
///     private key  squtun-private- and 64 hex digits, mode 0600     (NAME.key of genkey --keypair)
///     public key   squtun-public- and 64 hex digits, any mode       (NAME.pub)
///
/// Hex, not base64: it has no character that mail, chat, markdown, URLs or
/// a shell change or drop (base64's + / =), it reads aloud without
/// O/0 or l/1 confusion, its case does not matter, and a PSK has always been
/// hex. The prefix names the kind, so a key given where another kind is
/// expected is told apart and named in the error; at 78 characters a
/// public key is one line in a terminal, a mail or a chat.
public enum KeyKind: Sendable, Equatable {
    case psk, privateKey, publicKey

    var name: String {
        switch self {
        case .psk: "a PSK"
        case .privateKey: "a private key"
        case .publicKey: "a public key"
        }
    }
}

/// What a key is given for, and so which kinds are right there.
public enum KeyRole: Sendable, Equatable {
    /// `-k`: this host's secret, a PSK or a private key.
    case tunnelKey
    /// `--psk`: a PSK mixed into a keypair setup.
    case psk
    /// `--peer-key`: the peer's public key.
    case peerKey
    /// `squtun pubkey`: a private key.
    case privateKey

    var accepts: [KeyKind] {
        switch self {
        case .tunnelKey: [.psk, .privateKey]
        case .psk: [.psk]
        case .peerKey: [.publicKey]
        case .privateKey: [.privateKey]
        }
    }
}

/// A decoded key: its kind and its 32 bytes (a secret buffer, also for a
/// public key: one decoder for every kind).
public struct DecodedKey: Sendable {
    public let kind: KeyKind
    public let bytes: SecretBytes
}

/// The key material of a tunnel as the settings name it, read and checked.
public enum TunnelKeys: Sendable {
    /// `-k` holds a PSK: it is the tunnel key T.
    case psk(SecretBytes)
    /// `-k` holds this host's private key; `--peer-key` the peer's public
    /// key; `--psk`, if given, a PSK mixed in. T is derived from them
    /// (squtun-crypto's TunnelKey) by the root helper or the single process.
    case keypair(privateKey: SecretBytes, peerPublic: [UInt8], psk: SecretBytes?)
}

extension KeyFile {
    public static let privatePrefix = "squtun-private-"
    public static let publicPrefix = "squtun-public-"

    /// Decodes any kind (`KeyKind`) from a file's contents or a text:
    /// whitespace trimmed, the prefix picks the kind, then 64 hex digits of
    /// a key that is not all zeros. Offsets in errors are `text`'s.
    public static func decodeAny(_ text: UnsafeRawBufferPointer, path: String) -> Result<DecodedKey, ConfigError> {
        let (start, end) = trimmed(text)
        for (prefix, kind) in [(privatePrefix, KeyKind.privateKey), (publicPrefix, .publicKey)] {
            let p = Array(prefix.utf8)
            guard end - start >= p.count, (0..<p.count).allSatisfy({ lowercase(text[start + $0]) == p[$0] }) else { continue }
            return decodeHex(text, start: start + p.count, end: end, path: path).map { DecodedKey(kind: kind, bytes: $0) }
        }
        return decodeHex(text, start: start, end: end, path: path).map { DecodedKey(kind: .psk, bytes: $0) }
    }

    /// Reads the key file `path` given for `role`: a kind the role does not
    /// take is refused with a line naming what the file holds instead; a
    /// secret (PSK, private key) must pass the owner and mode rules of
    /// `KeyFile.read`, a public key need not.
    public static func readKey(path: String, role: KeyRole) throws(ConfigError) -> DecodedKey {
        let raw = try readRaw(path: path, ownerAndMode: false)
        let key = try decode(raw.text, length: raw.length, name: path, role: role)
        if key.kind != .publicKey {
            do { try checkOwnerAndMode(path: path, owner: raw.owner, mode: raw.mode) } catch {
                key.bytes.wipe()
                throw error
            }
        }
        return key
    }

    /// Reads a key for `role` from an open descriptor (standard input);
    /// `name` is for messages. No owner or mode to check.
    public static func readKey(fd: Int32, name: String, role: KeyRole) throws(ConfigError) -> DecodedKey {
        let raw = try readContents(fd: fd, name: name)
        return try decode(raw.text, length: raw.length, name: name, role: role)
    }

    /// The key in `text[0..<length]` if it is of a kind `role` takes;
    /// `text` is wiped either way.
    private static func decode(_ text: SecretBytes, length: Int, name: String, role: KeyRole) throws(ConfigError) -> DecodedKey {
        defer { text.wipe() }
        let key = try text.withUnsafeBytes { decodeAny(UnsafeRawBufferPointer(rebasing: $0[0..<length]), path: name) }.get()
        guard role.accepts.contains(key.kind) else {
            key.bytes.wipe()
            throw .keyWrongKind(path: name, role: role, holds: key.kind)
        }
        return key
    }

    /// The peer's public key from `--peer-key`'s value: the key itself
    /// (`squtun-public-…`, as pasted from the peer's .pub) or a file holding
    /// it. A value starting with "squtun-" (after blanks a paste may have
    /// brought) and without a "/" is text; a
    /// path to a file of that name can be given as ./squtun-….
    public static func readPeerKey(_ value: String) throws(ConfigError) -> [UInt8] {
        let key: DecodedKey
        let blanks: Set<Character> = [" ", "\t", "\r", "\n"]
        let pasted = value.drop(while: { blanks.contains($0) })
        if pasted.lowercased().hasPrefix("squtun-") && !value.contains("/") {
            let decoded = Array(value.utf8).withUnsafeBytes { decodeAny($0, path: value) }
            switch decoded {
            case .success(let k): key = k
            case .failure:
                throw .badOption(option: "--peer-key", problem: "is neither a public key (squtun-public- and 64 hex digits) "
                                 + "nor a file's path", value: String(value.prefix(100)))
            }
            guard key.kind == .publicKey else {
                key.bytes.wipe()
                throw .keyWrongKind(path: nil, role: .peerKey, holds: key.kind)
            }
        } else {
            key = try readKey(path: value, role: .peerKey)
        }
        return key.bytes.withUnsafeBytes { Array($0) }
    }

    /// The tunnel's key material: `-k`'s file, and for a private key there
    /// `--peer-key` (required) and `--psk` (optional); both only with a
    /// private key. The private key is read first.
    public static func readTunnelKeys(keyPath: String, peerKey: String?, pskPath: String?) throws(ConfigError) -> TunnelKeys {
        let key = try readKey(path: keyPath, role: .tunnelKey)
        switch key.kind {
        case .privateKey:
            guard let peerKey else {
                key.bytes.wipe()
                throw .missingOption(option: "--peer-key", when: "when -k holds a private key (\(SharedError.quote(keyPath)))")
            }
            do {
                let peer = try readPeerKey(peerKey)
                let psk = try pskPath.map { p throws(ConfigError) in try readKey(path: p, role: .psk).bytes }
                return .keypair(privateKey: key.bytes, peerPublic: peer, psk: psk)
            } catch {
                key.bytes.wipe()
                throw error
            }
        default:
            for (option, given) in [("--peer-key", peerKey != nil), ("--psk", pskPath != nil)] where given {
                key.bytes.wipe()
                throw .keyNeedsKeypair(option: option, keyPath: keyPath)
            }
            return .psk(key.bytes)
        }
    }

    /// A server's `-k` (`ServerSettings.serverKeyPath`): its private key,
    /// which makes it a keypair server. A PSK is refused: a PSK server has
    /// no key of its own (its clients' PSKs are the files in --peers).
    public static func readServerKey(path: String) throws(ConfigError) -> SecretBytes {
        let key = try readKey(path: path, role: .tunnelKey)
        guard key.kind == .privateKey else {
            key.bytes.wipe()
            throw .serverKeyIsPSK(path: path)
        }
        return key.bytes
    }

    /// A public key's text: the prefix and 64 lowercase hex digits.
    public static func publicKeyText(_ key: [UInt8]) -> String {
        let text = key.withUnsafeBytes { encode(SecretBytes(copying: $0), prefix: publicPrefix) }
        return text.withUnsafeBytes { String(decoding: $0.dropLast(), as: UTF8.self) }
    }

    private static func lowercase(_ b: UInt8) -> UInt8 {
        b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b + 32 : b
    }
}
