import Shared
import SqutunSystem
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// The tunnel's command-line options, with SquTUN's (2005) short names: the
/// command-line surface, whose `resolve()` gives the validated settings
/// (`TunnelConfig`, Settings.swift); the checks of single values are
/// `OptionCheck` (Validators.swift), shared with the config file.
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

    /// The pid file and status socket these options give for `interface`:
    /// what was asked for, else the defaults (the socket following the pid
    /// file). The daemon and `squtun status` both ask here.
    public func pidfilePath(interface: String) -> String {
        pidfile ?? Self.defaultPidfile(interface: interface)
    }

    public func controlSocketPath(interface: String) -> String {
        control ?? Self.controlSocket(forPidfile: pidfilePath(interface: interface))
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
            help: ArgumentHelp("Tun interface name (required unless -m); with --server, the clients' tun name "
                               + "pattern with one %d (default: \(ServerSettings.defaultTunPattern)).", valueName: "iface"))
    public var interface: String?

    @Option(name: [.customShort("k"), .long],
            help: ArgumentHelp("Key file, mode 0600 (required unless -m): a PSK (64 hex digits, squtun genkey) "
                               + "or this host's private key (squtun genkey --keypair NAME: NAME.key); with "
                               + "--server, optional: the server's private key.",
                               valueName: "file"))
    public var key: String?

    // Keypair setup (-k holds a private key).
    @Option(name: .customLong("peer-key"),
            help: ArgumentHelp("The peer's public key (its NAME.pub, or the squtun-public-… text itself); "
                               + "required when -k holds a private key.", valueName: "file-or-key"))
    public var peerKey: String?

    @Option(name: .customLong("psk"),
            help: ArgumentHelp("Beside a keypair: a PSK file (64 hex digits, mode 0600) mixed into the tunnel key, "
                               + "so that the private key alone is not enough.", valueName: "file"))
    public var psk: String?

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

    @Flag(name: .customLong("tap"),
          help: ArgumentHelp("Layer 2: -i names a TAP device and the tunnel carries Ethernet frames (both ends); "
                             + "with -m, the MTU is the TAP device's."))
    public var tap = false

    // Cipher suite (wire protocol v2).
    @Option(name: .customLong("cipher"),
            help: ArgumentHelp("Cipher suite, the same at both ends: " + SuiteID.names.joined(separator: ", ")
                               + "; with -m, the MTU is this suite's. (default: \(SuiteID.defaultSuite.name))",
                               valueName: "name"))
    public var cipher: String?

    // Server mode (docs/CONFIG.md, "Server mode").
    @Flag(name: .customLong("server"),
          help: "Serve many clients, each with a tun of its own named by -i's pattern (default: sqc%d).")
    public var server = false

    @Option(name: .customLong("peers"),
            help: ArgumentHelp("Server: the directory of client files, one per client, named by its identifier "
                               + "(absolute; required with --server).", valueName: "dir"))
    public var peers: String?

    // Its words up to the next option: `--hook /usr/local/sbin/up tun -v -i …`
    // would end at -v; a config file's `hook` line has no such limit.
    @Option(name: .customLong("hook"), parsing: .upToNextOption,
            help: ArgumentHelp("Server: run PROG (absolute path) with ARGs as root when a client's tun is up "
                               + "or goes down (TUN_EVENT, TUN_DEV_NAME, TUN_CLIENT_ID in its environment).",
                               valueName: "prog arg"))
    public var hook: [String] = []

    @Option(name: .customLong("idle-timeout"), parsing: .unconditional,
            help: ArgumentHelp("Server: a client silent this long loses its tun, 0 = never "
                               + "(max \(ServerSettings.maxIdleTimeoutSeconds)). (default: 0)", valueName: "seconds"))
    public var idleTimeout: String?

    @Option(name: .customLong("max-clients"), parsing: .unconditional,
            help: ArgumentHelp("Server: clients with a tun at once, 1-\(ServerSettings.maxClientsLimit). "
                               + "(default: \(ServerSettings.defaultMaxClients))", valueName: "n"))
    public var maxClients: String?

    @Option(name: .customLong("id"),
            help: ArgumentHelp("Client of a server: this end's identifier, its file's name in the server's --peers "
                               + "(1-32 of A-Z a-z 0-9 . _ -, first a letter or digit).", valueName: "name"))
    public var id: String?

    @Option(name: .customLong("config"),
            help: ArgumentHelp("Read settings from FILE, one 'long-option-name value' per line (squtun(8)); "
                               + "options on the command line override the file's.", valueName: "file"),
            completion: .file())
    public var config: String?

    public init() {}

    /// What the command line asks for, fully checked and typed.
    public enum Invocation: Equatable, Sendable {
        /// `-m`: print the tun MTU for a link MTU.
        case mtu(linkMTU: Int, underlay: Underlay, suite: SuiteID, tap: Bool = false)
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

    /// Every check except the presence of `-i`/`-k`/`--peers` (see the
    /// type's comment), of the command line only (the config file is read by
    /// `resolve()`). With `--config`, the checks of options that depend on
    /// each other (the mode, -r's peer) wait for the file: it may hold the other.
    public func check() throws(ConfigError) {
        _ = try checkedValues(labels: Labels(), complete: config == nil)
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
            case .peerKey: if peerKey == nil { peerKey = value } else { taken = false }
            case .psk: if psk == nil { psk = value } else { taken = false }
            case .keepalive: if keepalive == nil { keepalive = value } else { taken = false }
            case .skew: if skew == nil { skew = value } else { taken = false }
            case .bind: if bind == nil { bind = value } else { taken = false }
            case .foreground: if !foreground { foreground = true } else { taken = false }
            case .user: if user == nil { user = value } else { taken = false }
            case .chroot: if chroot == nil { chroot = value } else { taken = false }
            case .pidfile: if pidfile == nil { pidfile = value } else { taken = false }
            case .control: if control == nil { control = value } else { taken = false }
            case .noOffload: if !noOffload { noOffload = true } else { taken = false }
            case .tap: if !tap { tap = true } else { taken = false }
            case .cipher: if cipher == nil { cipher = value } else { taken = false }
            case .server: if !server { server = true } else { taken = false }
            case .peers: if peers == nil { peers = value } else { taken = false }
            case .hook: if hook.isEmpty { hook = OptionCheck.words(value) } else { taken = false }
            case .idleTimeout: if idleTimeout == nil { idleTimeout = value } else { taken = false }
            case .maxClients: if maxClients == nil { maxClients = value } else { taken = false }
            case .id: if id == nil { id = value } else { taken = false }
            }
            if taken { labels.fromFile[entry.setting] = file.label(entry) }
        }
    }

    private func resolveMerged(labels: Labels) throws(ConfigError) -> Invocation {
        let v = try checkedValues(labels: labels, complete: true)
        if let link = v.linkMTU {
            return .mtu(linkMTU: link, underlay: ipv6 ? .ipv6 : .ipv4, suite: v.suite, tap: tap)
        }
        // With --config, say where else the setting could have been.
        func when(_ setting: TunnelSetting, _ condition: String = "unless -m is given") -> String {
            condition + (config.map { " (or as '\(setting.rawValue)' in \($0))" } ?? "")
        }
        if server {
            guard let peers else { throw .missingOption(option: "--peers", when: when(.peers, "with --server")) }
            return .tunnel(serverConfig(peers: peers, values: v))
        }
        guard let interface else { throw .missingOption(option: "-i/--interface", when: when(.interface)) }
        guard let key else { throw .missingOption(option: "-k/--key", when: when(.key)) }
        // The command line and the config file name one peer.
        var tunnel = TunnelConfig(
            localPort: v.localPort,
            peers: [PeerSettings(host: peer, port: v.remotePort, keyPath: key, peerKey: peerKey, pskPath: psk)],
            interface: interface,
            keepaliveSeconds: v.keepalive,
            skewSeconds: v.skew,
            bindAddress: bind,
            foreground: foreground,
            user: user ?? TunnelOptions.defaultUser,
            chrootDirectory: chroot ?? TunnelOptions.defaultChroot,
            pidfile: pidfilePath(interface: interface),
            controlSocket: controlSocketPath(interface: interface),
            offload: !noOffload)
        tunnel.cipher = v.suite
        tunnel.clientID = id
        tunnel.tap = tap
        return .tunnel(tunnel)
    }

    /// The settings of a server, its options checked (`checkMode`).
    private func serverConfig(peers: String, values v: Values) -> TunnelConfig {
        let pattern = interface ?? ServerSettings.defaultTunPattern
        let name = ServerSettings.name(ofPattern: pattern)
        let settings = ServerSettings(peersDirectory: peers, hook: hook.isEmpty ? nil : hook,
                                      idleTimeoutSeconds: v.idleTimeout, maxClients: v.maxClients,
                                      tunPattern: pattern, serverKeyPath: key, pskPath: psk)
        var tunnel = TunnelConfig(
            server: settings, localPort: v.localPort, keepaliveSeconds: v.keepalive, skewSeconds: v.skew,
            bindAddress: bind, foreground: foreground, user: user ?? TunnelOptions.defaultUser,
            chrootDirectory: chroot ?? TunnelOptions.defaultChroot, pidfile: pidfilePath(interface: name),
            controlSocket: controlSocketPath(interface: name), offload: !noOffload)
        tunnel.cipher = v.suite
        return tunnel
    }

    /// The options that belong to one mode only: with --server, those of a
    /// point-to-point tunnel or a client are refused, and -i is a pattern;
    /// without it, the server's are refused and -i is a name. One line each.
    private func checkMode(labels: Labels, maxClients: Int) throws(ConfigError) {
        // A server's clients each get a tun device it makes: no TAP devices.
        if tap && server {
            throw .notWithServer(option: labels[.tap], reason: "a server makes a tun device for each client; "
                                 + "--tap is for a point-to-point tunnel")
        }
        if tap, let id {
            throw .badOption(option: labels[.tap], problem: "not valid with --id (a server's clients send IP "
                             + "packets to its tun devices; --tap is for a point-to-point tunnel)", value: id)
        }
        guard server else {
            for setting in TunnelSetting.serverOnly where given(setting) {
                throw .serverOption(option: labels[setting])
            }
            if let interface, interface.utf8.contains(UInt8(ascii: "%")) {
                throw .badOption(option: labels[.interface], problem: "a tun name pattern (%d) is for --server; "
                                 + "a tunnel's -i names its device", value: interface)
            }
            return
        }
        let refused: [(TunnelSetting, String)] = [
            (.peer, "clients name the server; it answers each at the address it hears it from"),
            (.remotePort, "clients name the server's port; it answers each at the port it hears it from"),
            (.peerKey, "a keypair server's client public keys are the files in --peers"),
            (.id, "--id names this end as a client of a server"),
        ]
        for (setting, reason) in refused where given(setting) {
            throw .notWithServer(option: labels[setting], reason: reason)
        }
        if psk != nil && key == nil {
            throw .optionNeeds(option: labels[.psk], needs: "-k/--key in server mode (a keypair server's "
                               + "private key; a PSK server's client PSKs are the files in --peers)")
        }
        let pattern = interface ?? ServerSettings.defaultTunPattern
        if !pattern.utf8.contains(UInt8(ascii: "%")) {
            throw .badOption(option: labels[.interface], problem: "in server mode -i is the clients' tun name "
                             + "pattern, with %d for the number (e.g. \(ServerSettings.defaultTunPattern))", value: pattern)
        }
        try OptionCheck.tunPattern(pattern, option: labels[.interface], maxClients: maxClients)
    }

    /// Whether a setting of the mode checks has a value (command line or file).
    private func given(_ setting: TunnelSetting) -> Bool {
        switch setting {
        case .peer: peer != nil
        case .remotePort: remotePort != nil
        case .peerKey: peerKey != nil
        case .id: id != nil
        case .tap: tap
        case .peers: peers != nil
        case .hook: !hook.isEmpty
        case .idleTimeout: idleTimeout != nil
        case .maxClients: maxClients != nil
        default: false
        }
    }

    /// The option part of each setting's error messages: the command line's
    /// name, or `FILE:LINE: name` for a value taken from the config file.
    struct Labels {
        var fromFile: [TunnelSetting: String] = [:]
        subscript(setting: TunnelSetting) -> String { fromFile[setting] ?? setting.commandLineLabel }
        func isFromFile(_ setting: TunnelSetting) -> Bool { fromFile[setting] != nil }
    }

    private struct Values {
        var localPort: UInt16
        var remotePort: UInt16
        var keepalive: Int
        var skew: Int
        var linkMTU: Int?
        var suite: SuiteID
        var idleTimeout: Int
        var maxClients: Int
    }

    /// Each value checked; with `complete` (nothing more to come from a
    /// config file) also the options that depend on each other.
    private func checkedValues(labels: Labels, complete: Bool) throws(ConfigError) -> Values {
        let localPort = try OptionCheck.port(localPort ?? String(TunnelOptions.defaultPort), option: labels[.localPort])
        if let peer { try OptionCheck.setting(.peer, value: peer, label: labels[.peer]) }
        var remote = UInt16(TunnelOptions.defaultPort)
        if let remotePort {
            remote = try OptionCheck.port(remotePort, option: labels[.remotePort])
            if peer == nil && complete && !server {
                let problem = labels.isFromFile(.remotePort) ? "needs a peer (peer in the file, or -p/--peer)"
                                                             : "needs -p/--peer"
                throw .badOption(option: labels[.remotePort], problem: problem, value: remotePort)
            }
        }
        if let interface { try OptionCheck.setting(.interface, value: interface, label: labels[.interface]) }
        if let key { try OptionCheck.setting(.key, value: key, label: labels[.key]) }
        if let peerKey { try OptionCheck.setting(.peerKey, value: peerKey, label: labels[.peerKey]) }
        if let psk { try OptionCheck.setting(.psk, value: psk, label: labels[.psk]) }
        let keepalive = try OptionCheck.keepaliveSeconds(keepalive ?? "0", option: labels[.keepalive])
        let skew = try OptionCheck.skewSeconds(skew ?? String(Wire.defaultSkewSeconds), option: labels[.skew])
        let suite = try cipher.map { c throws(ConfigError) in try OptionCheck.cipher(c, option: labels[.cipher]) }
            ?? .defaultSuite
        var linkMTU: Int?
        if let mtu {
            linkMTU = try OptionCheck.linkMTU(mtu, option: "-m/--mtu", underlay: ipv6 ? .ipv6 : .ipv4, suite: suite,
                                              tap: tap)
        } else if ipv6 {
            throw .optionNeeds(option: "--ipv6", needs: "-m/--mtu")
        }
        if let bind { try OptionCheck.setting(.bind, value: bind, label: labels[.bind]) }
        try OptionCheck.setting(.user, value: user ?? TunnelOptions.defaultUser, label: labels[.user])
        try OptionCheck.setting(.chroot, value: chroot ?? TunnelOptions.defaultChroot, label: labels[.chroot])
        if let pidfile { try OptionCheck.setting(.pidfile, value: pidfile, label: labels[.pidfile]) }
        if let control { try OptionCheck.setting(.control, value: control, label: labels[.control]) }
        if let peers { try OptionCheck.setting(.peers, value: peers, label: labels[.peers]) }
        if !hook.isEmpty { try OptionCheck.hook(hook, option: labels[.hook]) }
        let idle = try OptionCheck.idleTimeoutSeconds(idleTimeout ?? "0", option: labels[.idleTimeout])
        let clients = try OptionCheck.maxClients(maxClients ?? String(ServerSettings.defaultMaxClients),
                                                 option: labels[.maxClients])
        if let id { try OptionCheck.setting(.id, value: id, label: labels[.id]) }
        if complete { try checkMode(labels: labels, maxClients: clients) }
        return Values(localPort: localPort, remotePort: remote, keepalive: keepalive, skew: skew, linkMTU: linkMTU,
                      suite: suite, idleTimeout: idle, maxClients: clients)
    }
}
