import Shared
import SqutunSystem
#if canImport(Glibc)
import Glibc
#endif

/// A tunnel setting that a config file may hold: the command line's long
/// option names without the dashes (`local-port 3456`, `peer vpn.example.org`).
/// `-m`/`--ipv6` (an action, not a setting) and `--config` itself are
/// command-line only.
public enum TunnelSetting: String, CaseIterable, Sendable {
    case localPort = "local-port"
    case peer
    case remotePort = "remote-port"
    case interface
    case key
    case peerKey = "peer-key"
    case psk
    case keepalive
    case skew
    case bind
    case foreground
    case user
    case chroot
    case pidfile
    case control
    case noOffload = "no-offload"
    // Layer 2: a TAP device, Ethernet frames.
    case tap
    // Cipher suite (wire protocol v2).
    case cipher
    // Server mode, and a server's client.
    case server
    case peers
    case hook
    case idleTimeout = "idle-timeout"
    case maxClients = "max-clients"
    case id

    /// How the command line spells it, as in its one-line errors.
    public var commandLineLabel: String {
        switch self {
        case .localPort: return "-l/--local-port"
        case .peer: return "-p/--peer"
        case .remotePort: return "-r/--remote-port"
        case .interface: return "-i/--interface"
        case .key: return "-k/--key"
        case .peerKey: return "--peer-key"
        case .psk: return "--psk"
        case .keepalive: return "-a/--keepalive"
        case .skew: return "-c/--skew"
        case .bind: return "-b/--bind"
        case .foreground: return "-f/--foreground"
        case .user: return "-u/--user"
        case .chroot: return "--chroot"
        case .pidfile: return "--pidfile"
        case .control: return "--control"
        case .noOffload: return "--no-offload"
        case .tap: return "--tap"
        case .cipher: return "--cipher"
        case .server: return "--server"
        case .peers: return "--peers"
        case .hook: return "--hook"
        case .idleTimeout: return "--idle-timeout"
        case .maxClients: return "--max-clients"
        case .id: return "--id"
        }
    }

    /// A flag is a line of its own name; every other setting needs a value.
    public var isFlag: Bool { self == .foreground || self == .noOffload || self == .server || self == .tap }

    /// The settings only a server takes.
    public static let serverOnly: [TunnelSetting] = [.peers, .hook, .idleTimeout, .maxClients]
}

/// A squtun config file (`squtun --config FILE`, `squtun@IFACE.service`):
///
///     # comment
///     peer 198.51.100.2      # trailing comment
///     remote-port 3457
///     key /etc/squtun/tun0.key
///     foreground
///
/// One setting per line: a long option name (`TunnelSetting`), blanks, and
/// the value (the rest of the line, surrounding blanks removed); a flag
/// stands alone. A list (`hook PROG ARG...`) is its words, split at blanks
/// (no quoting: a word cannot hold a blank). `#` starts a comment at the beginning of a line or after a
/// blank. Each setting at most once. Every error is one line,
/// `FILE:LINE: NAME: PROBLEM 'VALUE'` (or `FILE:LINE: PROBLEM 'WORD'`), a
/// usage error like the command line's (exit 64). Values get exactly the
/// command line's checks (`OptionCheck.setting`); command-line
/// options override the file's (`TunnelOptions.resolve()`).
public struct ConfigFile: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var setting: TunnelSetting
        /// nil for a flag.
        public var value: String?
        /// 1-based.
        public var line: Int

        public init(setting: TunnelSetting, value: String?, line: Int) {
            self.setting = setting
            self.value = value
            self.line = line
        }
    }

    /// A config file is a few hundred bytes; anything this large is not one.
    public static let maxFileSize = 65536

    public var path: String
    /// In file order.
    public var entries: [Entry]

    public init(path: String, entries: [Entry]) {
        self.path = path
        self.entries = entries
    }

    public subscript(setting: TunnelSetting) -> Entry? { entries.first { $0.setting == setting } }

    /// `FILE:LINE: name`, the option part of this entry's error messages.
    public func label(_ entry: Entry) -> String { "\(path):\(entry.line): \(entry.setting.rawValue)" }

    // MARK: Reading

    /// Reads and parses the file at `path` (checked like the command line).
    public static func load(path: String) throws(ConfigError) -> ConfigFile {
        let option = "--config"
        if path.isEmpty { throw .badOption(option: option, problem: "empty file name", value: path) }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            throw .badOption(option: option, problem: "cannot read config file (\(SharedError.errnoText()))", value: path)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw .badOption(option: option, problem: "cannot read config file (\(SharedError.errnoText()))", value: path)
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw .badOption(option: option, problem: "not a regular file", value: path)
        }
        var bytes = [UInt8](repeating: 0, count: maxFileSize + 1)
        let read = bytes.withUnsafeMutableBytes { b in
            Result { () throws(Errno) in try FileDescriptor(rawValue: fd).readAll(into: b) }
        }
        let total: Int
        switch read {
        case .success(let n): total = n
        case .failure(let e):
            throw .badOption(option: option, problem: "cannot read config file (\(SharedError.errnoText(e.rawValue)))",
                             value: path)
        }
        guard total <= maxFileSize else {
            throw .badOption(option: option, problem: "larger than \(maxFileSize) bytes, not a config file", value: path)
        }
        return try parse(bytes[0..<total], path: path)
    }

    /// Parses file contents; `path` is for messages.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> ConfigFile {
        try parse(Array(text.utf8)[...], path: path)
    }

    /// Parses file contents; `path` is for messages.
    public static func parse(_ bytes: ArraySlice<UInt8>, path: String) throws(ConfigError) -> ConfigFile {
        var entries: [Entry] = []
        var number = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            let where_ = "\(path):\(number)"
            // Strip a comment: '#' first on the line or after a blank.
            var line = rawLine
            var previous: UInt8 = UInt8(ascii: " ")
            for i in line.indices {
                if line[i] == UInt8(ascii: "#") && isBlank(previous) {
                    line = line[line.startIndex..<i]
                    break
                }
                previous = line[i]
            }
            let trimmed = trim(line)
            if trimmed.isEmpty { continue }
            let nameEnd = trimmed.firstIndex(where: isBlank) ?? trimmed.endIndex
            let name = String(decoding: trimmed[trimmed.startIndex..<nameEnd], as: UTF8.self)
            let rest = trim(trimmed[nameEnd...])
            let value: String? = rest.isEmpty ? nil : String(decoding: rest, as: UTF8.self)

            guard let setting = TunnelSetting(rawValue: name) else {
                throw .badOption(option: where_, problem: unknownProblem(name), value: name)
            }
            let label = "\(where_): \(name)"
            if let first = entries.first(where: { $0.setting == setting }) {
                throw .badOption(option: label, problem: "given twice (first on line \(first.line))",
                                 value: value ?? name)
            }
            if setting.isFlag {
                if let value { throw .badOption(option: label, problem: "is a flag and takes no value", value: value) }
            } else {
                guard let value else { throw .badOption(option: where_, problem: "no value given for", value: name) }
                try OptionCheck.setting(setting, value: value, label: label)
            }
            entries.append(Entry(setting: setting, value: value, line: number))
        }
        return ConfigFile(path: path, entries: entries)
    }

    /// The problem part of "FILE:LINE: PROBLEM 'name'" for a name that is no setting.
    private static func unknownProblem(_ name: String) -> String {
        let bare = String(name.drop(while: { $0 == "-" }))
        if bare != name, TunnelSetting(rawValue: bare) != nil {
            return "unknown option (write it without dashes: \(bare))"
        }
        if let long = TunnelSetting.allCases.first(where: { $0.commandLineLabel.hasPrefix("-\(bare)/") }) {
            return "unknown option (use the long name: \(long.rawValue))"
        }
        switch bare {
        case "mtu", "m", "ipv6":
            return "not allowed in a config file (squtun -m LINK_MTU prints the tun MTU)"
        case "config":
            return "not allowed in a config file (config files do not include others)"
        case "help", "h", "version":
            return "not allowed in a config file"
        default:
            return "unknown option"
        }
    }

    private static func isBlank(_ b: UInt8) -> Bool {
        b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r")
    }

    private static func trim(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = s
        while let f = s.first, isBlank(f) { s = s.dropFirst() }
        while let l = s.last, isBlank(l) { s = s.dropLast() }
        return s
    }
}
