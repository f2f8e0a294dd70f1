#if canImport(Glibc)
import Glibc
#endif

/// The one failure of the Shared module: the session identifier's random
/// bits could not be read. The text helpers below make every module's
/// one-line messages alike.
public enum SharedError: Error, Equatable, Sendable, CustomStringConvertible {
    case randomFailed(reason: String)

    public var description: String {
        switch self {
        case let .randomFailed(reason): return "getrandom failed: \(reason)"
        }
    }
}

extension SharedError {
    /// `'value'` with anything unprintable escaped, so a hostile or mistyped
    /// argument can never break the one-line error format (or the terminal).
    public static func quote(_ value: String) -> String {
        var out = "'"
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out += "\\\\"
            case UInt8(ascii: "'"): out += "\\'"
            case 0x20..<0x7f: out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "\n"): out += "\\n"
            case UInt8(ascii: "\t"): out += "\\t"
            case UInt8(ascii: "\r"): out += "\\r"
            default: out += "\\x" + hex2(byte)
            }
        }
        return out + "'"
    }

    /// The text of `errno` (or of the given code), for "what the OS said" parts of messages.
    public static func errnoText(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }

    /// A file mode's permission bits as four octal digits ("0644").
    public static func octal(_ mode: UInt32) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    public static func hex2(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }

}
