#if canImport(Glibc)
import Glibc
#endif
import Shared

/// Every failure of the configuration module (options, config file, key files). Each case renders as ONE line (the CLI
/// prints it after "squtun: "), and knows whether it is a usage error.
public enum ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    // Usage errors (exit 64).
    /// `option` was given `value`, which is wrong because of `problem`.
    case badOption(option: String, problem: String, value: String)
    /// `option` must be given; `when` says in which case.
    case missingOption(option: String, when: String)
    /// `option` (a flag, so there is no value to show) makes sense only with `needs`.
    case optionNeeds(option: String, needs: String)
    /// `option` belongs to server mode, but `--server` is not given.
    case serverOption(option: String)
    /// `option` has no meaning for a server; `reason` says what to do instead.
    case notWithServer(option: String, reason: String)
    /// In server mode `-k` holds a PSK: a server's key is a private key.
    case serverKeyIsPSK(path: String)

    // The server's peers directory (exit 1).
    /// Missing, not a directory, or not safe: nothing of it can be trusted.
    case peersDirectory(path: String, problem: String)

    // Key files (exit 1).
    case keyFileUnreadable(path: String, reason: String)
    case keyFileNotRegular(path: String, kind: String)
    case keyFilePermissions(path: String, mode: UInt32)
    case keyFileOwner(path: String, owner: UInt32, you: UInt32)
    case keyFileTooLarge(path: String, size: Int, limit: Int)
    case keyFileDigitCount(path: String, found: Int, expected: Int)
    case keyFileBadCharacter(path: String, offset: Int, byte: UInt8)
    case keyFileAllZero(path: String)
    /// A key of another kind than `role` takes (KeyFormat.swift); `path`
    /// nil: the text given to --peer-key.
    case keyWrongKind(path: String?, role: KeyRole, holds: KeyKind)
    /// `option` (--peer-key, --psk) belongs to a keypair setup, but the
    /// file of -k holds a PSK.
    case keyNeedsKeypair(option: String, keyPath: String)

    // Key generation (exit 1).
    case randomFailed(reason: String)
    case keyFileExists(path: String)
    case keyFileCreate(path: String, reason: String)
    case keyFileWrite(path: String, reason: String)

    /// EX_USAGE from sysexits.h for usage errors; 1 for everything else.
    public var exitCode: Int32 {
        switch self {
        case .badOption, .missingOption, .optionNeeds, .keyNeedsKeypair, .serverOption, .notWithServer,
             .serverKeyIsPSK: return 64
        default: return 1
        }
    }

    public var isUsageError: Bool { exitCode == 64 }

    public var description: String {
        switch self {
        case let .badOption(option, problem, value):
            return "\(option): \(problem) \(SharedError.quote(value))"
        case let .missingOption(option, when):
            return "\(option): required \(when)"
        case let .optionNeeds(option, needs):
            return "\(option): only valid together with \(needs)"
        case let .serverOption(option):
            return "\(option) is a server option: only valid together with --server"
        case let .notWithServer(option, reason):
            return "\(option): not valid with --server (\(reason))"
        case let .serverKeyIsPSK(path):
            return "key file \(SharedError.quote(path)) holds a PSK: in server mode -k takes the server's private key; "
                + "client PSKs are the files in --peers"
        case let .peersDirectory(path, problem):
            return "--peers \(SharedError.quote(path)): \(problem)"
        case let .keyFileUnreadable(path, _), let .keyFileNotRegular(path, _), let .keyFilePermissions(path, _),
             let .keyFileOwner(path, _, _), let .keyFileTooLarge(path, _, _), let .keyFileDigitCount(path, _, _),
             let .keyFileBadCharacter(path, _, _), let .keyFileAllZero(path):
            return "key file \(SharedError.quote(path)): \(keyFileProblem ?? "")"
        case let .keyWrongKind(path, role, holds):
            return Self.wrongKind(subject: path.map { "key file \(SharedError.quote($0))" } ?? "--peer-key's text",
                                  role: role, holds: holds)
        case let .keyNeedsKeypair(option, keyPath):
            return "\(option): only for a keypair setup, but -k's \(SharedError.quote(keyPath)) holds a PSK; "
                + "make a keypair with: squtun genkey --keypair NAME"
        case let .randomFailed(reason):
            return "getrandom failed: \(reason)"
        case let .keyFileExists(path):
            return "\(SharedError.quote(path)) already exists; refusing to overwrite it"
        case let .keyFileCreate(path, reason):
            return "cannot create \(SharedError.quote(path)): \(reason)"
        case let .keyFileWrite(path, reason):
            return "cannot write \(SharedError.quote(path)): \(reason)"
        }
    }
}

extension ConfigError {
    /// What is wrong with a key file, without naming it (the text after
    /// "key file 'PATH': "), for the cases about one key file; nil for the others.
    /// The peers directory's lines (`PeersDirectory`) name the file their own way.
    var keyFileProblem: String? {
        switch self {
        case let .keyFileUnreadable(path, reason):
            // Only a missing file is fixed by making one.
            let hint = reason.hasPrefix("No such file") ? "; make one with: squtun genkey \(path)" : ""
            return "cannot read: \(reason)\(hint)"
        case let .keyFileNotRegular(_, kind):
            return "not a regular file (\(kind))"
        case let .keyFilePermissions(path, mode):
            return "permissions \(SharedError.octal(mode)) are too open; run chmod 600 \(SharedError.quote(path))"
        case let .keyFileOwner(path, owner, you):
            let fix = you == 0 ? "run chown root \(SharedError.quote(path))" : "run as root: chown \(you) \(SharedError.quote(path))"
            return "owned by uid \(owner), not by root or you (uid \(you)), so that user can change it; \(fix)"
        case let .keyFileTooLarge(_, size, limit):
            return "\(size) bytes is too large for a key file (at most \(limit))"
        case let .keyFileDigitCount(_, found, expected):
            return "found \(found) hex digits, need exactly \(expected); make one with: squtun genkey"
        case let .keyFileBadCharacter(_, offset, byte):
            return "\(Self.describe(byte)) at byte offset \(offset) is not a hex digit; make one with: squtun genkey"
        case .keyFileAllZero:
            return "the key is all zeros; make one with 'squtun genkey'"
        default:
            return nil
        }
    }

    /// Each mistake its own line: what the key holds, what the option takes, where the key belongs.
    static func wrongKind(subject: String, role: KeyRole, holds: KeyKind) -> String {
        let what: String
        switch (role, holds) {
        case (.tunnelKey, .publicKey):
            what = "holds a public key (squtun-public-…), but -k takes this host's PSK or private key (NAME.key); "
                + "a peer's public key goes to --peer-key"
        case (.psk, .privateKey):
            what = "holds a private key, but --psk takes a PSK (64 hex digits, squtun genkey); "
                + "this host's private key goes to -k"
        case (.psk, .publicKey):
            what = "holds a public key, but --psk takes a PSK (64 hex digits, squtun genkey); "
                + "the peer's public key goes to --peer-key"
        case (.peerKey, .psk):
            what = "holds a PSK (64 hex digits), but --peer-key takes the peer's public key (its NAME.pub, "
                + "squtun-public-…); a PSK goes to -k, or to --psk beside a keypair"
        case (.peerKey, .privateKey):
            what = "holds a PRIVATE key, but --peer-key takes the peer's public key (its NAME.pub); "
                + "a private key never leaves its host: make its .pub there with squtun pubkey"
        case (.privateKey, .psk):
            what = "holds a PSK, which has no public key; squtun pubkey reads a private key "
                + "(squtun genkey --keypair NAME makes NAME.key)"
        case (.privateKey, .publicKey):
            what = "holds a public key already; squtun pubkey reads a private key (NAME.key)"
        default:
            what = "holds \(holds.name), which is not taken here"
        }
        return "\(subject): \(what)"
    }

    /// A wrong byte of a key file: printable ones as themselves, others as hex.
    static func describe(_ byte: UInt8) -> String {
        switch byte {
        case UInt8(ascii: " "): return "space"
        case UInt8(ascii: "'"), UInt8(ascii: "\\"): return "character 0x\(SharedError.hex2(byte))"
        case 0x21..<0x7f: return "character '\(Character(Unicode.Scalar(byte)))'"
        default: return "byte 0x\(SharedError.hex2(byte))"
        }
    }
}
