/// `squtun status --json`: the status text (`name: value` lines; a
/// server's client blocks after a blank line, each starting with
/// `client:`) as one JSON object, so both come from one rendering. A
/// point-to-point end is one flat object; a server's object has its own
/// fields and `"clients": [...]`, one object per block. Whole numbers are
/// JSON numbers, everything else a string.
public enum StatusJSON {
    public static func convert(_ text: String) -> String {
        var blocks: [[(String, String)]] = [[]]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty {
                if !(blocks.last?.isEmpty ?? true) { blocks.append([]) }
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            var value = line[line.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
            blocks[blocks.count - 1].append((name, String(value)))
        }
        if blocks.last?.isEmpty == true && blocks.count > 1 { blocks.removeLast() }
        var out = "{" + fields(blocks[0])
        let clients = blocks.dropFirst()
        if !clients.isEmpty {
            out += (blocks[0].isEmpty ? "" : ",") + "\"clients\":[" + clients.map { "{" + fields($0) + "}" }.joined(separator: ",") + "]"
        }
        return out + "}\n"
    }

    private static func fields(_ pairs: [(String, String)]) -> String {
        pairs.map { "\(quote($0.0)):\(number($0.1) ?? quote($0.1))" }.joined(separator: ",")
    }

    /// A whole number as JSON writes it (no leading zeros, no sign).
    private static func number(_ text: String) -> String? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              text == "0" || text.first != "0", text.utf8.count <= 20 else { return nil }
        return text
    }

    private static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
