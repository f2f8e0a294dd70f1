import Shared
import SqutunSystem
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// The pre-shared key file: 64 hex digits (32 bytes) and optional surrounding
/// whitespace, mode 0600 or stricter, owned by root or by the user reading it. Plain open/fstat/read and no Foundation,
/// so the key passes only through buffers this code wipes (never a String).
public enum KeyFile {
    /// A key file is 65 bytes; anything this large is not one.
    public static let maxFileSize = 4096
    public static let hexDigitCount = 2 * Wire.pskLength  // 64

    // MARK: Reading

    /// Reads, checks and decodes the key file at `path`: a PSK (the pure
    /// reader of the PSK format; `readKey(path:role:)` tells the kinds apart).
    public static func read(path: String) throws(ConfigError) -> SecretBytes {
        let raw = try readRaw(path: path, ownerAndMode: true)
        defer { raw.text.wipe() }
        return try raw.text.withUnsafeBytes { decode(UnsafeRawBufferPointer(rebasing: $0[0..<raw.length]), path: path) }.get()
    }

    /// The contents of the regular file `path` (at most `maxFileSize`
    /// bytes) in a buffer the caller wipes, and its owner and mode. With
    /// `ownerAndMode` the owner and mode rules (`checkOwnerAndMode`) are
    /// applied before reading.
    static func readRaw(path: String, ownerAndMode: Bool) throws(ConfigError)
        -> (text: SecretBytes, length: Int, owner: UInt32, mode: UInt32) {
        // O_NONBLOCK: opening a FIFO must not hang; fstat rejects it next.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw .keyFileUnreadable(path: path, reason: SharedError.errnoText()) }
        defer { close(fd) }

        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .keyFileUnreadable(path: path, reason: SharedError.errnoText()) }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else { throw .keyFileNotRegular(path: path, kind: kindName(type)) }
        if ownerAndMode { try checkOwnerAndMode(path: path, owner: st.st_uid, mode: st.st_mode) }
        guard st.st_size <= maxFileSize else {
            throw .keyFileTooLarge(path: path, size: Int(st.st_size), limit: maxFileSize)
        }

        let (buffer, length) = try readContents(fd: fd, name: path)
        return (buffer, length, st.st_uid, st.st_mode)
    }

    /// Everything `fd` gives until EOF, at most `maxFileSize` bytes, in a
    /// buffer the caller wipes. `name` is for messages.
    static func readContents(fd: Int32, name: String) throws(ConfigError) -> (text: SecretBytes, length: Int) {
        // One spare byte tells a file that grew past the limit since fstat.
        let buffer = SecretBytes(count: maxFileSize + 1)
        let readResult = buffer.withUnsafeMutableBytes { b in Result { () throws(Errno) in try FileDescriptor(rawValue: fd).readAll(into: b) } }
        let length: Int
        switch readResult {
        case .success(let n): length = n
        case .failure(let e):
            buffer.wipe()
            throw .keyFileUnreadable(path: name, reason: SharedError.errnoText(e.rawValue))
        }
        guard length <= maxFileSize else {
            buffer.wipe()
            throw .keyFileTooLarge(path: name, size: length, limit: maxFileSize)
        }
        return (buffer, length)
    }

    /// A secret's file (PSK, private key): like ssh, the owner can chmod
    /// and rewrite it, so it must be root or us (for a root start: root);
    /// then nobody else may read or write it.
    static func checkOwnerAndMode(path: String, owner: UInt32, mode: UInt32) throws(ConfigError) {
        let you = getuid()
        guard owner == 0 || owner == you else {
            throw .keyFileOwner(path: path, owner: owner, you: you)
        }
        // A key others can read (or replace) is no longer secret.
        guard mode & 0o077 == 0 else { throw .keyFilePermissions(path: path, mode: mode) }
    }

    /// Decodes key file contents: trims whitespace, requires exactly 64 hex
    /// digits (either case) and a key that is not all zeros. `path` is for messages.
    public static func decode(_ text: UnsafeRawBufferPointer, path: String) -> Result<SecretBytes, ConfigError> {
        let (start, end) = trimmed(text)
        return decodeHex(text, start: start, end: end, path: path)
    }

    /// The bounds of `text` without surrounding whitespace.
    static func trimmed(_ text: UnsafeRawBufferPointer) -> (start: Int, end: Int) {
        var start = 0
        var end = text.count
        while start < end, isSpace(text[start]) { start += 1 }
        while end > start, isSpace(text[end - 1]) { end -= 1 }
        return (start, end)
    }

    /// `text[start..<end]` as 64 hex digits of a key that is not all zeros;
    /// offsets in errors are `text`'s.
    static func decodeHex(_ text: UnsafeRawBufferPointer, start: Int, end: Int, path: String) -> Result<SecretBytes, ConfigError> {
        // A wrong character is the more specific complaint, so it goes first.
        for i in start..<end where hexValue(text[i]) == nil {
            return .failure(.keyFileBadCharacter(path: path, offset: i, byte: text[i]))
        }
        guard end - start == hexDigitCount else {
            return .failure(.keyFileDigitCount(path: path, found: end - start, expected: hexDigitCount))
        }
        let key = SecretBytes(count: Wire.pskLength)
        let any: UInt8 = key.withUnsafeMutableBytes { k in
            var any: UInt8 = 0
            for j in 0..<k.count {
                // Both force unwraps are safe: every byte was checked above.
                let byte = hexValue(text[start + 2 * j])! << 4 | hexValue(text[start + 2 * j + 1])!
                k[j] = byte
                any |= byte
            }
            return any
        }
        // An all-zero key is what an unfilled template or a failed generator leaves.
        guard any != 0 else { return .failure(.keyFileAllZero(path: path)) }
        return .success(key)
    }

    // MARK: Generating (squtun genkey)

    /// A new key from getrandom(2).
    public static func generate() throws(ConfigError) -> SecretBytes {
        let key = SecretBytes(count: Wire.pskLength)
        let rc = key.withUnsafeMutableBytes { squtun_getrandom($0.baseAddress, $0.count) }
        guard rc == 0 else { throw .randomFailed(reason: SharedError.errnoText()) }
        return key
    }

    /// `key` as a key file's contents: `prefix` (none for a PSK), lowercase
    /// hex and a newline.
    public static func encode(_ key: SecretBytes, prefix: String = "") -> SecretBytes {
        let digits = Array("0123456789abcdef".utf8)
        let head = Array(prefix.utf8)
        let text = SecretBytes(count: head.count + 2 * key.count + 1)
        key.withUnsafeBytes { k in
            text.withUnsafeMutableBytes { t in
                for (j, byte) in head.enumerated() { t[j] = byte }
                for (j, byte) in k.enumerated() {
                    t[head.count + 2 * j] = digits[Int(byte >> 4)]
                    t[head.count + 2 * j + 1] = digits[Int(byte & 0xf)]
                }
                t[t.count - 1] = UInt8(ascii: "\n")
            }
        }
        return text
    }

    /// Writes `text` to an open descriptor (standard output); `name` is for messages.
    public static func write(_ text: SecretBytes, to fd: Int32, name: String) throws(ConfigError) {
        if case .failure(let e) = text.withUnsafeBytes({ writeAll(fd, $0) }) {
            throw .keyFileWrite(path: name, reason: SharedError.errnoText(e.rawValue))
        }
    }

    /// Creates `path` with `mode` (0600: a secret; a public key's file is
    /// 0644) holding `text`, and syncs it. Never overwrites or follows a
    /// symlink (O_EXCL | O_NOFOLLOW); a file it created but could not finish
    /// is removed again.
    public static func create(path: String, text: SecretBytes, mode: mode_t = 0o600) throws(ConfigError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { throw .keyFileExists(path: path) }
            throw .keyFileCreate(path: path, reason: SharedError.errnoText(code))
        }
        var failure: Int32? = nil
        if case .failure(let e) = text.withUnsafeBytes({ writeAll(fd, $0) }) { failure = e.rawValue }
        // The umask may have narrowed the creation mode; 0600 is what the reader requires.
        if failure == nil, fchmod(fd, mode) != 0 { failure = errno }
        if failure == nil, fsync(fd) != 0 { failure = errno }
        if close(fd) != 0, failure == nil { failure = errno }
        if let failure {
            unlink(path)
            throw .keyFileWrite(path: path, reason: SharedError.errnoText(failure))
        }
    }

    // MARK: Helpers

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Result<Void, Errno> {
        Result { () throws(Errno) in try FileDescriptor(rawValue: fd).writeAll(bytes) }
    }

    static func isSpace(_ b: UInt8) -> Bool {
        b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r") || b == UInt8(ascii: "\n")
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func kindName(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "file type 0o" + String(type, radix: 8)
        }
    }
}
