import Shared
import SqutunSystem
#if canImport(Glibc)
import Glibc
#endif

/// Syntax checks for single option values; each throws `.badOption` naming
/// the option and the value.
public enum OptionCheck {
    /// The syntax check of one setting's value, the same for the command line
    /// and the config file; `label` names it in the error.
    public static func setting(_ setting: TunnelSetting, value: String, label: String) throws(ConfigError) {
        switch setting {
        case .localPort, .remotePort: _ = try port(value, option: label)
        case .peer: try host(value, option: label)
        case .interface:
            // A server's -i is a pattern; which one the mode needs is the resolve's check.
            if value.utf8.contains(UInt8(ascii: "%")) { try tunPattern(value, option: label) }
            else { try interfaceName(value, option: label) }
        case .key, .psk:
            if value.isEmpty { throw .badOption(option: label, problem: "empty file name", value: value) }
        case .peerKey:
            if value.isEmpty { throw .badOption(option: label, problem: "empty (a public key or its file)", value: value) }
        case .keepalive: _ = try keepaliveSeconds(value, option: label)
        case .skew: _ = try skewSeconds(value, option: label)
        case .bind: try ipAddress(value, option: label)
        case .foreground, .noOffload, .server, .tap: break
        case .peers: try absolutePath(value, option: label)
        case .hook: try hook(words(value), option: label)
        case .idleTimeout: _ = try idleTimeoutSeconds(value, option: label)
        case .maxClients: _ = try maxClients(value, option: label)
        case .id: try clientID(value, option: label)
        case .user: try userName(value, option: label)
        case .chroot, .pidfile, .control: try absolutePath(value, option: label)
        case .cipher: _ = try cipher(value, option: label)
        }
    }

    /// A cipher suite by its name (`--cipher`).
    public static func cipher(_ name: String, option: String) throws(ConfigError) -> SuiteID {
        guard let suite = SuiteID(name: name) else {
            let names = SuiteID.names
            throw .badOption(option: option, problem: "unknown cipher suite (use "
                + names.dropLast().joined(separator: ", ") + " or \(names.last!))", value: name)
        }
        return suite
    }

    /// A decimal integer in `range` ("+5", "0x10", " 5" are not). `tooSmall`
    /// replaces the generic message for values below the range.
    public static func integer(_ text: String, option: String, in range: ClosedRange<Int>,
                               tooSmall: String? = nil) throws(ConfigError) -> Int {
        let negative = text.hasPrefix("-")
        let digits = negative ? text.utf8.dropFirst() : text.utf8[...]
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw .badOption(option: option, problem: "not a whole number", value: text)
        }
        let outOfRange = "out of range \(range.lowerBound)-\(range.upperBound)"
        // Int() fails only on overflow here: far out of range either way.
        guard let n = Int(text) else {
            throw .badOption(option: option, problem: negative ? (tooSmall ?? outOfRange) : outOfRange, value: text)
        }
        if n < range.lowerBound {
            let problem = tooSmall ?? (negative && range.lowerBound >= 0 ? "must not be negative" : outOfRange)
            throw .badOption(option: option, problem: problem, value: text)
        }
        if n > range.upperBound { throw .badOption(option: option, problem: outOfRange, value: text) }
        return n
    }

    public static func port(_ text: String, option: String) throws(ConfigError) -> UInt16 {
        UInt16(try integer(text, option: option, in: 1...65535))
    }

    /// -a: seconds between keepalives, 0 (none) up to an hour.
    public static func keepaliveSeconds(_ text: String, option: String) throws(ConfigError) -> Int {
        try integer(text, option: option, in: 0...TunnelOptions.maxKeepaliveSeconds)
    }

    /// -c: the allowed clock skew in seconds, up to a day.
    public static func skewSeconds(_ text: String, option: String) throws(ConfigError) -> Int {
        try integer(text, option: option, in: 0...TunnelOptions.maxSkewSeconds)
    }

    /// --idle-timeout: seconds without a datagram from a client before its
    /// tun goes, 0 (never) up to a day.
    public static func idleTimeoutSeconds(_ text: String, option: String) throws(ConfigError) -> Int {
        try integer(text, option: option, in: 0...ServerSettings.maxIdleTimeoutSeconds)
    }

    /// --max-clients: clients with a tun at once.
    public static func maxClients(_ text: String, option: String) throws(ConfigError) -> Int {
        try integer(text, option: option, in: 1...ServerSettings.maxClientsLimit)
    }

    /// --id: a client identifier (`ClientID`'s rule).
    public static func clientID(_ name: String, option: String) throws(ConfigError) {
        if let problem = ClientID.problem(name) { throw .badOption(option: option, problem: problem, value: name) }
    }

    /// --hook PROG [ARG...]: run directly (no shell), so PROG is an absolute
    /// path; the arguments are passed as they are.
    public static func hook(_ words: [String], option: String) throws(ConfigError) {
        guard let program = words.first else {
            throw .badOption(option: option, problem: "no program given", value: "")
        }
        try absolutePath(program, option: option)
    }

    /// A config file's list: its words, split at blanks.
    public static func words(_ value: String) -> [String] {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }

    /// A server's `-i`: the clients' tun name pattern, one `%d` (the kernel
    /// puts the lowest free number there) in an interface name of at most
    /// 15 bytes, counting `%d` as its two bytes, and more than `%d`
    /// (what is left names the server: `ServerSettings.name(ofPattern:)`).
    public static func tunPattern(_ pattern: String, option: String) throws(ConfigError) {
        let bytes = Array(pattern.utf8)
        let percents = bytes.indices.filter { bytes[$0] == UInt8(ascii: "%") }
        guard percents.count == 1, percents[0] + 1 < bytes.count, bytes[percents[0] + 1] == UInt8(ascii: "d") else {
            throw .badOption(option: option, problem: "a tun name pattern needs exactly one %d and no other %",
                             value: pattern)
        }
        if bytes.count > Tun.maxNameLength {
            throw .badOption(option: option, problem: "tun name pattern longer than \(Tun.maxNameLength) bytes "
                             + "(%d counts as 2)", value: pattern)
        }
        let stem = ServerSettings.name(ofPattern: pattern)
        if stem.isEmpty || stem == "." || stem == ".." {
            throw .badOption(option: option, problem: "a tun name pattern needs a name around its %d", value: pattern)
        }
        if let bad = stem.utf8.first(where: { !Tun.isNameByte($0) }) {
            throw .badOption(option: option,
                             problem: "tun name pattern may only use A-Z a-z 0-9 _ . - and %d (not \(describe(bad)))",
                             value: pattern)
        }
    }

    /// The pattern's names up to `maxClients` clients (numbers 0 to
    /// maxClients - 1, the kernel taking the lowest free) fit an interface name.
    public static func tunPattern(_ pattern: String, option: String, maxClients: Int) throws(ConfigError) {
        let digits = String(maxClients - 1).utf8.count
        let longest = pattern.utf8.count - 2 + digits
        if longest > Tun.maxNameLength {
            throw .badOption(option: option, problem: "with up to \(maxClients) clients the names reach "
                             + "\(longest) bytes, more than \(Tun.maxNameLength) (a shorter pattern, or a lower --max-clients)",
                             value: pattern)
        }
    }

    /// A link MTU that leaves the tun device at least the underlay's minimum MTU.
    public static func linkMTU(_ text: String, option: String, underlay: Underlay,
                               suite: SuiteID = .defaultSuite, tap: Bool = false) throws(ConfigError) -> Int {
        let smallest = MTU.smallestLinkMTU(underlay: underlay, suite: suite, tap: tap)
        let tooSmall = "too small: a \(tap ? "TAP" : "tun") MTU of \(underlay.minimumMTU) (\(underlay.name)'s minimum) "
            + "needs a link MTU of at least \(smallest)"
        return try integer(text, option: option, in: smallest...MTU.maxLinkMTU, tooSmall: tooSmall)
    }

    /// A Linux interface name: the tun device's rule (`Tun.isValidName`),
    /// with the one it breaks named.
    public static func interfaceName(_ name: String, option: String) throws(ConfigError) {
        let maxLength = Tun.maxNameLength
        if name.isEmpty { throw .badOption(option: option, problem: "empty interface name", value: name) }
        if name == "." || name == ".." {
            throw .badOption(option: option, problem: "'.' and '..' are not interface names", value: name)
        }
        if name.utf8.count > maxLength {
            throw .badOption(option: option, problem: "interface name longer than \(maxLength) bytes", value: name)
        }
        if let bad = name.utf8.first(where: { !Tun.isNameByte($0) }) {
            throw .badOption(option: option,
                             problem: "interface name may only use A-Z a-z 0-9 _ . - (not \(describe(bad)))",
                             value: name)
        }
    }

    /// An IPv4 or IPv6 address literal (inet_pton's syntax; no brackets, no zone).
    public static func ipAddress(_ text: String, option: String) throws(ConfigError) {
        if !isIPAddress(text) { throw .badOption(option: option, problem: "not an IPv4 or IPv6 address", value: text) }
    }

    /// An address literal, or a DNS hostname (RFC 1123 labels, plus '_', which
    /// getaddrinfo and /etc/hosts accept); not resolved here.
    public static func host(_ text: String, option: String) throws(ConfigError) {
        if isIPAddress(text) { return }
        var labels = text.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count > 1, labels.last?.isEmpty == true { labels.removeLast() }  // "host.example."
        let labelsOK = !labels.isEmpty && labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.utf8.allSatisfy(isHostByte)
                && label.utf8.first != UInt8(ascii: "-") && label.utf8.last != UInt8(ascii: "-")
        }
        // An all-numeric last label means a mistyped address ("10.0.0.256"), not a name.
        let numericTLD = labels.last?.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } ?? false
        if !labelsOK || numericTLD || text.utf8.count > 253 {
            throw .badOption(option: option, problem: "not a hostname or IPv4/IPv6 address", value: text)
        }
    }

    /// A user name as useradd accepts it (also a numeric UID).
    public static func userName(_ name: String, option: String) throws(ConfigError) {
        let ok = (1...32).contains(name.utf8.count) && name.utf8.first != UInt8(ascii: "-")
            && name.utf8.allSatisfy(isUserNameByte)
        if !ok { throw .badOption(option: option, problem: "not a user name", value: name) }
    }

    public static func absolutePath(_ path: String, option: String) throws(ConfigError) {
        if !path.hasPrefix("/") { throw .badOption(option: option, problem: "must be an absolute path", value: path) }
        if path.utf8.count >= Int(PATH_MAX) {
            throw .badOption(option: option, problem: "path longer than \(PATH_MAX - 1) bytes", value: path)
        }
    }

    private static func isIPAddress(_ text: String) -> Bool {
        var buf = (UInt64(0), UInt64(0))  // room for an in6_addr
        return withUnsafeMutableBytes(of: &buf) { p in
            inet_pton(AF_INET, text, p.baseAddress) == 1 || inet_pton(AF_INET6, text, p.baseAddress) == 1
        }
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }

    private static func isUserNameByte(_ b: UInt8) -> Bool {
        isAlnum(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
    }

    private static func isHostByte(_ b: UInt8) -> Bool {
        isAlnum(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
    }

    private static func describe(_ b: UInt8) -> String {
        if (0x21..<0x7f).contains(b), b != UInt8(ascii: "'") { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16)
    }
}
