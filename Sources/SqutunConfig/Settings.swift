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

/// The tunnel's settings after every check.
public struct TunnelConfig: Equatable, Sendable {
    public var localPort: UInt16
    /// At least one (the initialisers see to it); in the order given.
    public private(set) var peers: [PeerSettings]
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

    /// `peers` must not be empty: a tunnel without a peer has no key. The
    /// sources of settings check that before they get here.
    public init(localPort: UInt16, peers: [PeerSettings], interface: String,
                keepaliveSeconds: Int, skewSeconds: Int, bindAddress: String?, foreground: Bool,
                user: String, chrootDirectory: String, pidfile: String, controlSocket: String,
                offload: Bool = true) {
        precondition(!peers.isEmpty, "a tunnel has at least one peer")
        self.localPort = localPort
        self.peers = peers
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

    // The first peer's settings, for code that handles one peer (today all of it).

    /// `-p`: the first peer's host.
    public var peer: String? { peers[0].host }
    /// `-r`: the first peer's port.
    public var remotePort: UInt16 { peers[0].port }
    /// `-k`: the first peer's key file.
    public var keyPath: String { peers[0].keyPath }
}
