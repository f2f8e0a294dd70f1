import SqutunSystem
import SqutunDataPath
import SqutunPrivsep
import Shared
import SqutunConfig
#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered writes to fds 1 and 2 (the stdio globals are not
/// concurrency-safe in Swift 6, and exit() must not lose buffered output).
enum Output {
    /// One "squtun: ..." line on standard error. Newlines inside `message`
    /// become spaces: every error is exactly one line.
    static func error(_ message: String) {
        let flat = message.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map { $0.trimmingSpaces() }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
        write(2, "squtun: \(Sanitize.line(flat))\n")
    }

    static func stdout(_ text: String) throws(ConfigError) {
        if !write(1, text) { throw .keyFileWrite(path: "standard output", reason: SharedError.errnoText()) }
    }

    /// Help text (may span lines) on standard output.
    static func help(_ text: String) {
        write(1, text.hasSuffix("\n") ? text : text + "\n")
    }

    @discardableResult
    private static func write(_ fd: Int32, _ text: String) -> Bool {
        (try? FileDescriptor(rawValue: fd).writeAll(text)) != nil
    }
}

private extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
