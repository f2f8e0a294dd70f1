import Shared

/// One peer of the tunnel: where to send, if known, and the file of the key
/// shared with it. Today the command line and the config file give one
/// (`-p`, `-r`, `-k`); a source of more peers adds to the list
/// `TunnelConfig.peers`.
public struct PeerSettings: Equatable, Sendable {
    /// A hostname or address literal, syntax-checked only: resolving names is
    /// the setup's job. nil: wait for the peer to send first.
    public var host: String?
    /// The peer's UDP port (the default when not given, also without a host).
    public var port: UInt16
    /// The key file (`KeyFile`), read by the setup: a PSK, or this host's
    /// private key (then `peerKey` is the peer's public key).
    public var keyPath: String
    /// Keypair setup: the peer's public key, its text or its file (`--peer-key`).
    public var peerKey: String?
    /// Keypair setup: a PSK file mixed into the tunnel key (`--psk`).
    public var pskPath: String?

    public init(host: String?, port: UInt16, keyPath: String, peerKey: String? = nil, pskPath: String? = nil) {
        self.host = host
        self.port = port
        self.keyPath = keyPath
        self.peerKey = peerKey
        self.pskPath = pskPath
    }
}

/// Server mode (`--server`): one server, many clients, a tun per client.
/// The clients are the files of the peers directory (`PeersDirectory`),
/// read by the root helper; nothing here is read from a file yet.
public struct ServerSettings: Equatable, Sendable {
    /// `--peers`: one file per client, named by its identifier (absolute path).
    public var peersDirectory: String
    /// `--hook PROG ARG...`: run for each client's tun (up, down); PROG is
    /// an absolute path. nil: none.
    public var hook: [String]?
    /// `--idle-timeout`: a client heard from for this long loses its tun; 0 = never.
    public var idleTimeoutSeconds: Int
    /// `--max-clients`: at most this many clients with a tun at once.
    public var maxClients: Int
    /// `-i` in server mode: the clients' tun name pattern, with one `%d`
    /// that the kernel fills with the lowest free number.
    public var tunPattern: String
    /// `-k`: the server's private key (a keypair server: client files are
    /// public keys). nil: a PSK server (client files are PSKs).
    public var serverKeyPath: String?
    /// `--psk` beside `-k`: a PSK mixed into every client's tunnel key.
    public var pskPath: String?

    public static let defaultTunPattern = "sqc%d"
    public static let defaultMaxClients = 1024
    public static let maxClientsLimit = 65536
    public static let maxIdleTimeoutSeconds = 86400

    public init(peersDirectory: String, hook: [String]? = nil, idleTimeoutSeconds: Int = 0,
                maxClients: Int = ServerSettings.defaultMaxClients, tunPattern: String = ServerSettings.defaultTunPattern,
                serverKeyPath: String? = nil, pskPath: String? = nil) {
        self.peersDirectory = peersDirectory
        self.hook = hook
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.maxClients = maxClients
        self.tunPattern = tunPattern
        self.serverKeyPath = serverKeyPath
        self.pskPath = pskPath
    }

    /// What the client files hold: public keys for a keypair server, else PSKs.
    public var clientKeyKind: PeersDirectory.Expecting { serverKeyPath == nil ? .psk : .publicKey }

    /// The server's name: the pattern without its `%d` (`sqc%d`: `sqc`). It
    /// stands where a point-to-point tunnel has its interface name: the
    /// default pid file and status socket (`squtun status sqc`), the logs.
    public static func name(ofPattern pattern: String) -> String {
        let b = Array(pattern.utf8)
        guard let i = b.indices.dropLast().first(where: { b[$0] == UInt8(ascii: "%") && b[$0 + 1] == UInt8(ascii: "d") })
        else { return pattern }
        return String(decoding: b[..<i] + b[(i + 2)...], as: UTF8.self)
    }
}

/// The tunnel's settings after every check.
public struct TunnelConfig: Equatable, Sendable {
    public var localPort: UInt16
    /// A point-to-point tunnel: at least one (the initialisers see to it),
    /// in the order given. A server: none (its clients are `server`'s
    /// peers directory).
    public private(set) var peers: [PeerSettings]
    /// Server mode; nil for a point-to-point tunnel.
    public private(set) var server: ServerSettings?
    /// The tun device; for a server, its name (`ServerSettings.name(ofPattern:)`),
    /// which is no device: each client's tun is named by the pattern.
    public var interface: String
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
    /// The cipher suite (`--cipher`): both ends must name the same one.
    public var cipher: SuiteID = .defaultSuite
    /// `--tap`: the device is a TAP device and the tunnel carries Ethernet
    /// frames (both ends must say so); false: a tun device, IP packets.
    public var tap = false
    /// `--id`: this end is that client of a server; nil: point-to-point.
    public var clientID: String?

    /// A point-to-point tunnel. `peers` must not be empty: a tunnel without
    /// a peer has no key. The sources of settings check that before they get here.
    public init(localPort: UInt16, peers: [PeerSettings], interface: String,
                keepaliveSeconds: Int, skewSeconds: Int, bindAddress: String?, foreground: Bool,
                user: String, chrootDirectory: String, pidfile: String, controlSocket: String,
                offload: Bool = true) {
        precondition(!peers.isEmpty, "a tunnel has at least one peer")
        self.init(peers: peers, server: nil, localPort: localPort, interface: interface,
                  keepaliveSeconds: keepaliveSeconds, skewSeconds: skewSeconds, bindAddress: bindAddress,
                  foreground: foreground, user: user, chrootDirectory: chrootDirectory, pidfile: pidfile,
                  controlSocket: controlSocket, offload: offload)
    }

    /// A tunnel with one peer, as the command line and the config file give it.
    public init(localPort: UInt16, peer: String?, remotePort: UInt16, interface: String, keyPath: String,
                keepaliveSeconds: Int, skewSeconds: Int, bindAddress: String?, foreground: Bool,
                user: String, chrootDirectory: String, pidfile: String, controlSocket: String,
                offload: Bool = true) {
        self.init(localPort: localPort, peers: [PeerSettings(host: peer, port: remotePort, keyPath: keyPath)],
                  interface: interface, keepaliveSeconds: keepaliveSeconds, skewSeconds: skewSeconds,
                  bindAddress: bindAddress, foreground: foreground, user: user, chrootDirectory: chrootDirectory,
                  pidfile: pidfile, controlSocket: controlSocket, offload: offload)
    }

    /// A server (`--server`): no peers of its own.
    public init(server: ServerSettings, localPort: UInt16, keepaliveSeconds: Int, skewSeconds: Int,
                bindAddress: String?, foreground: Bool, user: String, chrootDirectory: String, pidfile: String,
                controlSocket: String, offload: Bool = true) {
        self.init(peers: [], server: server, localPort: localPort,
                  interface: ServerSettings.name(ofPattern: server.tunPattern), keepaliveSeconds: keepaliveSeconds,
                  skewSeconds: skewSeconds, bindAddress: bindAddress, foreground: foreground, user: user,
                  chrootDirectory: chrootDirectory, pidfile: pidfile, controlSocket: controlSocket, offload: offload)
    }

    /// Either kind: `peers` empty exactly when `server` is given.
    private init(peers: [PeerSettings], server: ServerSettings?, localPort: UInt16, interface: String,
                 keepaliveSeconds: Int, skewSeconds: Int, bindAddress: String?, foreground: Bool, user: String,
                 chrootDirectory: String, pidfile: String, controlSocket: String, offload: Bool) {
        self.localPort = localPort
        self.peers = peers
        self.server = server
        self.interface = interface
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

    // The first peer's settings, for code that handles one peer: a
    // point-to-point tunnel only (a server has none).

    /// `-p`: the first peer's host.
    public var peer: String? { firstPeer.host }
    /// `-r`: the first peer's port.
    public var remotePort: UInt16 { firstPeer.port }
    /// `-k`: the first peer's key file.
    public var keyPath: String { firstPeer.keyPath }

    private var firstPeer: PeerSettings {
        precondition(server == nil, "a server has no peer of its own: read config.server")
        return peers[0]
    }
}
