import Glibc
import CShim
import Shared

/// Writes the server's peers directory: one fresh pre-shared key per
/// simulated client, in the format `squtun genkey` writes (64 hex digits
/// and a newline), owned by the caller (root) and mode 0600 as the server
/// requires.
enum KeyWriter {
    static func write(count: Int, into directory: String) throws(SwarmError) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw .system("\(directory): \(String(cString: strerror(errno)))")
        }
        let hex = Array("0123456789abcdef".utf8)
        var key = [UInt8](repeating: 0, count: Wire.pskLength)
        var text = [UInt8](repeating: 0, count: 2 * Wire.pskLength + 1)
        defer {
            for i in key.indices { key[i] = 0 }
            for i in text.indices { text[i] = 0 }
        }
        for i in 1...count {
            let path = directory + "/" + clientName(i)
            guard key.withUnsafeMutableBytes({ squtun_getrandom($0.baseAddress, $0.count) }) == 0 else {
                throw .system("getrandom failed")
            }
            for (j, b) in key.enumerated() {
                text[2 * j] = hex[Int(b >> 4)]
                text[2 * j + 1] = hex[Int(b & 15)]
            }
            text[text.count - 1] = UInt8(ascii: "\n")
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .system("\(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            // The umask may have taken bits away, never added: 0600 exactly.
            guard fchmod(fd, 0o600) == 0, text.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == text.count
            else { throw .system("\(path): \(String(cString: strerror(errno)))") }
        }
    }
}
