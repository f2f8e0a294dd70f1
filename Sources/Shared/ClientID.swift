/// A client's identifier in server mode: the name of its file in the
/// server's peers directory and the client's `--id`. Its key id (the
/// datagram header's field at offset 4) is computed from these bytes by
/// squtun-crypto's `ClientKeyID` (PROTOCOL.md, "Server mode: key ids").
///
/// The rule: 1 to 32 bytes of `A-Z a-z 0-9 . _ -`, the first a letter or
/// a digit. So an identifier is a plain file name (no '/', never '.' or
/// '..', never hidden: the scan skips names starting with '.'), safe in a
/// log line, an environment variable of the hook and a shell word, and the
/// same bytes at both ends (ASCII only: no Unicode normalisation).
public enum ClientID {
    public static let maxLength = 32

    public static func isValid(_ name: String) -> Bool { problem(name) == nil }

    /// What is wrong with `name` as an identifier (the problem part of a
    /// one-line error), or nil if it is one.
    public static func problem(_ name: String) -> String? {
        let bytes = name.utf8
        guard let first = bytes.first else { return "empty identifier" }
        if bytes.count > maxLength { return "identifier longer than \(maxLength) bytes" }
        if !isLetterOrDigit(first) { return "identifier must start with a letter or a digit" }
        if !bytes.allSatisfy(isNameByte) { return "identifier may only use A-Z a-z 0-9 . _ -" }
        return nil
    }

    static func isLetterOrDigit(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }

    static func isNameByte(_ b: UInt8) -> Bool {
        isLetterOrDigit(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }
}
