// Fuzz target 2: key file contents (docs/FUZZING.md).
//
// The input is the contents of a key file. Checks, besides "never crash":
// - `KeyFile.decode` (the pure parser `KeyFile.read` uses) gives exactly
//   what a reference decoder of the README's rules gives: trim spaces, tabs,
//   CR and LF; the first non-hex byte is reported with its offset; then
//   exactly 64 digits; then not all zero;
// - `KeyFile.read` on a real file holding the input with mode 0600 agrees
//   with `decode` (or says "too large" past 4096 bytes), and refuses the
//   same file once it is mode 0640;
// - a decoded key survives `encode` → `decode` unchanged, and `encode`
//   writes lowercase hex and one newline;
// - every error message is one line of printable ASCII.

import FuzzOracle
import Shared
import SqutunConfig
#if canImport(Glibc)
import Glibc
#endif

// fail/note/require: FuzzOracle.

/// A private directory for the key file, in /dev/shm when there is one.
private let directory: String = {
    for base in ["/dev/shm", "/tmp"] {
        var template = Array("\(base)/squtun-fuzz-keyfile.XXXXXX".utf8CString)
        if let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) {
            let path = String(cString: made)
            atexit { rmdirTemporary() }
            return path
        }
    }
    fail("mkdtemp failed")
}()

private let keyPath = directory + "/k.key"

private func rmdirTemporary() {
    unlink(keyPath)
    rmdir(directory)
}

private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0d || b == 0x0a }

private func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: return b - 0x30
    case 0x61...0x66: return b - 0x61 + 10
    case 0x41...0x46: return b - 0x41 + 10
    default: return nil
    }
}

private func reference(_ d: UnsafeRawBufferPointer, path: String) -> Result<[UInt8], ConfigError> {
    var start = 0, end = d.count
    while start < end && isSpace(d[start]) { start += 1 }
    while end > start && isSpace(d[end - 1]) { end -= 1 }
    for i in start..<end where hexValue(d[i]) == nil {
        return .failure(.keyFileBadCharacter(path: path, offset: i, byte: d[i]))
    }
    if end - start != 64 { return .failure(.keyFileDigitCount(path: path, found: end - start, expected: 64)) }
    let key = (0..<32).map { j in hexValue(d[start + 2 * j])! << 4 | hexValue(d[start + 2 * j + 1])! }
    if key.allSatisfy({ $0 == 0 }) { return .failure(.keyFileAllZero(path: path)) }
    return .success(key)
}

private func bytes(_ s: SecretBytes) -> [UInt8] { s.withUnsafeBytes { Array($0) } }

private func plain(_ r: Result<SecretBytes, ConfigError>) -> Result<[UInt8], ConfigError> {
    r.map(bytes)
}

private func checkMessage(_ e: ConfigError) {
    let text = e.description
    require(!text.isEmpty && text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f },
            "error message is not one printable line: \(text.debugDescription)")
}

private func writeFile(_ d: UnsafeRawBufferPointer) {
    let fd = open(keyPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    require(fd >= 0, "open \(keyPath): \(errno)")
    require(fchmod(fd, 0o600) == 0, "fchmod")
    var done = 0
    while done < d.count {
        let n = write(fd, d.baseAddress! + done, d.count - done)
        require(n > 0, "write: \(errno)")
        done += n
    }
    close(fd)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKeyFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)

    // The pure decoder against the reference.
    let decoded = plain(KeyFile.decode(input, path: "fuzz.key"))
    let expected = reference(input, path: "fuzz.key")
    require(decoded == expected, "decode \(decoded) != reference \(expected)")
    note("decode: \(decoded.map { _ in "a key" })")
    switch decoded {
    case .success(let key):
        let keyBytes = key.withUnsafeBytes { SecretBytes(copying: $0) }
        let text = KeyFile.encode(keyBytes)
        let digits = Array("0123456789abcdef".utf8)
        var want: [UInt8] = []
        for b in key { want += [digits[Int(b >> 4)], digits[Int(b & 0xf)]] }
        want.append(0x0a)
        require(bytes(text) == want, "encode is not lowercase hex + newline")
        let again = text.withUnsafeBytes { plain(KeyFile.decode($0, path: "fuzz.key")) }
        require(again == .success(key), "encode → decode changed the key")
    case .failure(let e):
        checkMessage(e)
    }

    // The file reader on a real file.
    writeFile(input)
    var viaFile: Result<[UInt8], ConfigError>
    do { viaFile = .success(bytes(try KeyFile.read(path: keyPath))) } catch { viaFile = .failure(error) }
    if input.count > KeyFile.maxFileSize {
        require(viaFile == .failure(.keyFileTooLarge(path: keyPath, size: input.count, limit: KeyFile.maxFileSize)),
                "read of \(input.count) bytes: \(viaFile)")
    } else {
        let wanted = reference(input, path: keyPath)
        require(viaFile == wanted, "read \(viaFile) != decode \(wanted)")
    }
    if case .failure(let e) = viaFile { checkMessage(e) }

    // Group-readable: refused whatever it holds.
    require(chmod(keyPath, 0o640) == 0, "chmod")
    do {
        _ = try KeyFile.read(path: keyPath)
        fail("a mode 0640 key file was accepted")
    } catch {
        guard case .keyFilePermissions(let path, let mode) = error, path == keyPath, mode & 0o777 == 0o640 else {
            fail("mode 0640 gave \(error)")
        }
        checkMessage(error)
    }
    return 0
}
