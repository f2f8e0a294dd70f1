import Shared
/// Text from elsewhere made safe for a terminal and a log: the worker's log
/// lines and status reply (a compromised worker chooses every byte), and
/// anything else squtun prints. Control characters (C0, DEL, C1) could
/// move the cursor, retitle the terminal, clear it or forge a new log line;
/// bidirectional overrides and line separators could make a line read as
/// something else. Each becomes a visible escape: `\x1b`, `\u{202e}`.
public enum Sanitize {
    /// One log line: every control character escaped, newlines too.
    public static func line(_ text: String) -> String { escape(text, keepNewlines: false) }

    /// Several lines (the status reply): newlines kept, all else escaped.
    public static func text(_ text: String) -> String { escape(text, keepNewlines: true) }

    /// True if `scalar` must not reach a terminal as it is.
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1f, 0x7f...0x9f: return true  // C0, DEL, C1
        case 0x061c, 0x200e, 0x200f, 0x202a...0x202e, 0x2066...0x2069: return true  // bidi marks, embeddings, overrides, isolates
        case 0x2028, 0x2029: return true  // line and paragraph separators
        default: return false
        }
    }

    private static func escape(_ text: String, keepNewlines: Bool) -> String {
        // The common case costs one scan and no copy.
        guard text.unicodeScalars.contains(where: { isUnsafe($0) && !(keepNewlines && $0 == "\n") }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if !isUnsafe(scalar) || (keepNewlines && scalar == "\n") {
                out.append(scalar)
            } else if scalar.value < 0x80 {
                out.append(contentsOf: ("\\x" + SharedError.hex2(UInt8(scalar.value))).unicodeScalars)
            } else {
                out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            }
        }
        return String(out)
    }
}
