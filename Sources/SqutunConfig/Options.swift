import Shared
import SqutunSystem
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// The tunnel's command-line options, with SquTUN's (2005) short names.
///
/// Values are taken as strings and checked here rather than by ArgumentParser,
/// so every bad value gets the same one-line "option: problem 'value'" error
/// (ArgumentParser's own messages for non-numbers differ, and would reject a
/// negative number as a missing value).
///
/// `validate()` checks each given value and the pairs that conflict. Whether
/// `-i`/`-k` are present is checked by `resolve()` only: ArgumentParser
/// validates the root command's options before it runs a subcommand, and
/// `squtun genkey` needs neither.
///
/// `--config FILE` (`ConfigFile`) supplies settings the command line leaves
/// out: options with a default are optional here (the default is applied in
/// `checkedValues`), so that an option given on the command line, even with
/// the default's value, is told apart from one not given, and overrides
/// the file's.
public struct TunnelOptions: ParsableArguments, Sendable {
    public static let defaultPort = 3456
    public static let maxKeepaliveSeconds = 3600
    public static let maxSkewSeconds = 86400
    public static let defaultUser = "squtun"
    public static let defaultChroot = "/var/lib/squtun/empty"
    public static let pidfileTemplate = defaultPidfile(interface: "IFACE")
    public static func defaultPidfile(interface: String) -> String { "/run/squtun/squtun-\(interface).pid" }
    public static let controlTemplate = defaultControlSocket(interface: "IFACE")
    /// The root-only Unix socket `squtun status` reads.
    public static func defaultControlSocket(interface: String) -> String {
        controlSocket(forPidfile: defaultPidfile(interface: interface))
    }
    /// The status socket that goes with a pid file: `.pid` replaced by
    /// `.sock` (else `.sock` appended). Without `--control`, a tunnel's
    /// socket follows its `--pidfile`, so two tunnels with distinct pid
    /// files (same interface name in two network namespaces) never share
    /// a socket, and `squtun status IFACE --pidfile PATH` finds it.
    public static func controlSocket(forPidfile path: String) -> String {
        (path.hasSuffix(".pid") ? String(path.dropLast(4)) : path) + ".sock"
    }

    @Option(name: [.customShort("l"), .long], parsing: .unconditional,
            help: ArgumentHelp("Local UDP port. (default: \(TunnelOptions.defaultPort))", valueName: "port"))
    public var localPort: String?

    @Option(name: [.customShort("p"), .long],
            help: ArgumentHelp("Peer: hostname or IPv4/IPv6 address. Without it, wait for the peer to send first.",
                               valueName: "host"))
    public var peer: String?

    // Optional (not defaulted) so "-r without -p" can be told apart.
    @Option(name: [.customShort("r"), .long], parsing: .unconditional,
            help: ArgumentHelp("Peer's UDP port; needs -p. (default: \(TunnelOptions.defaultPort))",
                               valueName: "port"))
    public var remotePort: String?

    @Option(name: [.customShort("i"), .long],
            help: ArgumentHelp("Tun interface name (required unless -m).", valueName: "iface"))
    public var interface: String?

    @Option(name: [.customShort("k"), .long],
            help: ArgumentHelp("Key file: 64 hex digits, mode 0600 (required unless -m).", valueName: "file"))
    public var key: String?

    @Option(name: [.customShort("a"), .long], parsing: .unconditional,
            help: ArgumentHelp("Keepalive interval, 0 = off (max \(TunnelOptions.maxKeepaliveSeconds)). (default: 0)",
                               valueName: "seconds"))
    public var keepalive: String?

    @Option(name: [.customShort("c"), .long], parsing: .unconditional,
            help: ArgumentHelp("Largest accepted clock difference, 0 = no check (max \(TunnelOptions.maxSkewSeconds)). "
                                   + "(default: \(Wire.defaultSkewSeconds))",
                               valueName: "seconds"))
    public var skew: String?

    @Option(name: [.customShort("m"), .long], parsing: .unconditional,
            help: ArgumentHelp("Print the tun MTU for this link MTU and exit.", valueName: "link-mtu"))
    public var mtu: String?

    @Flag(name: .customLong("ipv6"), help: "With -m: the tunnel runs over IPv6 (48-byte underlay header, not 28).")
    public var ipv6 = false

    @Option(name: [.customShort("b"), .long],
            help: ArgumentHelp("Local IPv4/IPv6 address to bind (default: all).", valueName: "address"))
    public var bind: String?

    @Flag(name: [.customShort("f"), .long], help: "Stay in the foreground, log to stderr.")
    public var foreground = false

    @Option(name: [.customShort("u"), .long],
            help: ArgumentHelp("User to run as after setup. (default: \(TunnelOptions.defaultUser))", valueName: "user"))
    public var user: String?

    @Option(name: .customLong("chroot"),
            help: ArgumentHelp("Empty directory to chroot into (absolute). (default: \(TunnelOptions.defaultChroot))",
                               valueName: "dir"))
    public var chroot: String?

    @Option(name: .customLong("pidfile"),
            help: ArgumentHelp("PID file (absolute). (default: \(TunnelOptions.pidfileTemplate))",
                               valueName: "path"))
    public var pidfile: String?

    @Option(name: .customLong("control"),
            help: ArgumentHelp("Status socket, root-only (absolute). (default: the pid file's path with .sock "
                               + "for .pid, \(TunnelOptions.controlTemplate))",
                               valueName: "path"))
    public var control: String?

    @Flag(name: .customLong("no-offload"),
          help: "Do not use the tun's offloads (IFF_VNET_HDR: TCP segmentation and merging); one packet per read and write.")
    public var noOffload = false

    @Option(name: .customLong("config"),
            help: ArgumentHelp("Read settings from FILE, one 'long-option-name value' per line (squtun(8)); "
                               + "options on the command line override the file's.", valueName: "file"),
            completion: .file())
    public var config: String?

    public init() {}

    /// What the command line asks for, fully checked and typed.
    public enum Invocation: Equatable, Sendable {
        /// `-m`: print the tun MTU for a link MTU.
        case mtu(linkMTU: Int, underlay: Underlay)
        case tunnel(TunnelConfig)
    }

    public mutating func validate() throws {
        do {
            try check()
        } catch {
            // ValidationError is what ArgumentParser maps to exit 64 without
            // wrapping it; the text is ConfigError's one line.
            throw ValidationError(error.description)
        }
    }

    /// Every check except the presence of `-i`/`-k` (see the type's comment),
    /// of the command line only (the config file is read by `resolve()`).
    public func check() throws(ConfigError) {
        _ = try checkedValues(labels: Labels())
    }

    /// Reads `--config`'s file if given, fills in what the command line left
    /// out, checks everything and returns the typed result.
    public func resolve() throws(ConfigError) -> Invocation {
        var merged = self
        var labels = Labels()
        if let config {
            let file = try ConfigFile.load(path: config)
            merged.fill(from: file, labels: &labels)
        }
        return try merged.resolveMerged(labels: labels)
    }

    /// Takes each setting of `file` that the command line did not give.
    mutating func fill(from file: ConfigFile, labels: inout Labels) {
        for entry in file.entries {
            let value = entry.value ?? ""
            var taken = true
            switch entry.setting {
            case .localPort: if localPort == nil { localPort = value } else { taken = false }
            case .peer: if peer == nil { peer = value } else { taken = false }
            case .remotePort: if remotePort == nil { remotePort = value } else { taken = false }
            case .interface: if interface == nil { interface = value } else { taken = false }
            case .key: if key == nil { key = value } else { taken = false }
            case .keepalive: if keepalive == nil { keepalive = value } else { taken = false }
            case .skew: if skew == nil { skew = value } else { taken = false }
            case .bind: if bind == nil { bind = value } else { taken = false }
            case .foreground: if !foreground { foreground = true } else { taken = false }
            case .user: if user == nil { user = value } else { taken = false }
            case .chroot: if chroot == nil { chroot = value } else { taken = false }
            case .pidfile: if pidfile == nil { pidfile = value } else { taken = false }
            case .control: if control == nil { control = value } else { taken = false }
            case .noOffload: if !noOffload { noOffload = true } else { taken = false }
            }
            if taken { labels.fromFile[entry.setting] = file.label(entry) }
        }
    }

    private func resolveMerged(labels: Labels) throws(ConfigError) -> Invocation {
        let v = try checkedValues(labels: labels)
        if let link = v.linkMTU {
            return .mtu(linkMTU: link, underlay: ipv6 ? .ipv6 : .ipv4)
        }
        // With --config, say where else the setting could have been.
        func when(_ setting: TunnelSetting) -> String {
            "unless -m is given" + (config.map { " (or as '\(setting.rawValue)' in \($0))" } ?? "")
        }
        guard let interface else { throw .missingOption(option: "-i/--interface", when: when(.interface)) }
        guard let key else { throw .missingOption(option: "-k/--key", when: when(.key)) }
        return .tunnel(TunnelConfig(
            localPort: v.localPort,
            peer: peer,
            remotePort: v.remotePort,
            interface: interface,
            keyPath: key,
            keepaliveSeconds: v.keepalive,
            skewSeconds: v.skew,
            bindAddress: bind,
            foreground: foreground,
            user: user ?? TunnelOptions.defaultUser,
            chrootDirectory: chroot ?? TunnelOptions.defaultChroot,
            pidfile: pidfile ?? TunnelOptions.defaultPidfile(interface: interface),
            controlSocket: control ?? TunnelOptions.controlSocket(
                forPidfile: pidfile ?? TunnelOptions.defaultPidfile(interface: interface)),
            offload: !noOffload))
    }

    /// The option part of each setting's error messages: the command line's
    /// name, or `FILE:LINE: name` for a value taken from the config file.
    struct Labels {
        var fromFile: [TunnelSetting: String] = [:]
        subscript(setting: TunnelSetting) -> String { fromFile[setting] ?? setting.commandLineLabel }
        func isFromFile(_ setting: TunnelSetting) -> Bool { fromFile[setting] != nil }
    }

    /// The syntax check of one setting's value, the same for the command line
    /// and the config file; `label` names it in the error.
    public static func checkSetting(_ setting: TunnelSetting, value: String, label: String) throws(ConfigError) {
        switch setting {
        case .localPort, .remotePort: _ = try OptionCheck.port(value, option: label)
        case .peer: try OptionCheck.host(value, option: label)
        case .interface: try OptionCheck.interfaceName(value, option: label)
        case .key:
            if value.isEmpty { throw .badOption(option: label, problem: "empty file name", value: value) }
        case .keepalive: _ = try OptionCheck.integer(value, option: label, in: 0...maxKeepaliveSeconds)
        case .skew: _ = try OptionCheck.integer(value, option: label, in: 0...maxSkewSeconds)
        case .bind: try OptionCheck.ipAddress(value, option: label)
        case .foreground, .noOffload: break
        case .user: try OptionCheck.userName(value, option: label)
        case .chroot, .pidfile, .control: try OptionCheck.absolutePath(value, option: label)
        }
    }

    private struct Values {
        var localPort: UInt16
        var remotePort: UInt16
        var keepalive: Int
        var skew: Int
        var linkMTU: Int?
    }

    private func checkedValues(labels: Labels) throws(ConfigError) -> Values {
        let localPort = try OptionCheck.port(localPort ?? String(TunnelOptions.defaultPort), option: labels[.localPort])
        if let peer { try Self.checkSetting(.peer, value: peer, label: labels[.peer]) }
        var remote = UInt16(TunnelOptions.defaultPort)
        if let remotePort {
            remote = try OptionCheck.port(remotePort, option: labels[.remotePort])
            if peer == nil {
                let problem = labels.isFromFile(.remotePort) ? "needs a peer (peer in the file, or -p/--peer)"
                                                             : "needs -p/--peer"
                throw .badOption(option: labels[.remotePort], problem: problem, value: remotePort)
            }
        }
        if let interface { try Self.checkSetting(.interface, value: interface, label: labels[.interface]) }
        if let key { try Self.checkSetting(.key, value: key, label: labels[.key]) }
        let keepalive = try OptionCheck.integer(keepalive ?? "0", option: labels[.keepalive],
                                                in: 0...TunnelOptions.maxKeepaliveSeconds)
        let skew = try OptionCheck.integer(skew ?? String(Wire.defaultSkewSeconds), option: labels[.skew],
                                           in: 0...TunnelOptions.maxSkewSeconds)
        var linkMTU: Int?
        if let mtu {
            linkMTU = try OptionCheck.linkMTU(mtu, option: "-m/--mtu", underlay: ipv6 ? .ipv6 : .ipv4)
        } else if ipv6 {
            throw .optionNeeds(option: "--ipv6", needs: "-m/--mtu")
        }
        if let bind { try Self.checkSetting(.bind, value: bind, label: labels[.bind]) }
        try Self.checkSetting(.user, value: user ?? TunnelOptions.defaultUser, label: labels[.user])
        try Self.checkSetting(.chroot, value: chroot ?? TunnelOptions.defaultChroot, label: labels[.chroot])
        if let pidfile { try Self.checkSetting(.pidfile, value: pidfile, label: labels[.pidfile]) }
        if let control { try Self.checkSetting(.control, value: control, label: labels[.control]) }
        return Values(localPort: localPort, remotePort: remote, keepalive: keepalive, skew: skew, linkMTU: linkMTU)
    }
}

/// The tunnel's settings after every check.
public struct TunnelConfig: Equatable, Sendable {
    public var localPort: UInt16
    /// Syntax-checked only: resolving names is the daemon's job.
    public var peer: String?
    public var remotePort: UInt16
    public var interface: String
    public var keyPath: String
    /// 0 = off.
    public var keepaliveSeconds: Int
    /// 0 = no time check.
    public var skewSeconds: Int
    /// An IPv4/IPv6 literal, nil = any.
    public var bindAddress: String?
    public var foreground: Bool
    public var user: String
    public var chrootDirectory: String
    public var pidfile: String
    public var controlSocket: String
    /// Use the tun's offloads (IFF_VNET_HDR, TSO and checksum): see docs/PERFORMANCE.md.
    public var offload: Bool

    public init(localPort: UInt16, peer: String?, remotePort: UInt16, interface: String, keyPath: String,
                keepaliveSeconds: Int, skewSeconds: Int, bindAddress: String?, foreground: Bool,
                user: String, chrootDirectory: String, pidfile: String, controlSocket: String,
                offload: Bool = true) {
        self.localPort = localPort
        self.peer = peer
        self.remotePort = remotePort
        self.interface = interface
        self.keyPath = keyPath
        self.keepaliveSeconds = keepaliveSeconds
        self.skewSeconds = skewSeconds
        self.bindAddress = bindAddress
        self.foreground = foreground
        self.user = user
        self.chrootDirectory = chrootDirectory
        self.pidfile = pidfile
        self.controlSocket = controlSocket
        self.offload = offload
    }
}

/// Syntax checks for single option values; each throws `.badOption` naming
/// the option and the value.
public enum OptionCheck {
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

    /// A link MTU that leaves the tun device at least the underlay's minimum MTU.
    public static func linkMTU(_ text: String, option: String, underlay: Underlay) throws(ConfigError) -> Int {
        let smallest = MTU.smallestLinkMTU(underlay: underlay)
        let tooSmall = "too small: a tun MTU of \(underlay.minimumMTU) (\(underlay.name)'s minimum) "
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
