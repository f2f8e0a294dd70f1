import SqutunSystem
import SqutunDataPath
import Glibc
import Shared
import SqutunConfig
import squtun_crypto

/// One peer of `TunnelConfig.peers` made ready: its key read and checked,
/// its address (if it has a host) resolved.
package struct PreparedPeer {
    package let settings: PeerSettings
    /// The tunnel key T the worker gets: the PSK, or the key derived from a
    /// keypair (`TunnelKey`). A private key never gets this far.
    package let psk: SecretBytes
    package var address: SocketAddress?
    /// A PSK's key file, held open for this run's life (KeyFileUse).
    package let keyFileShare: FileDescriptor?
}

/// What both start modes (root helper, unprivileged single process) open and
/// check before anything runs, in this order, each failure one line:
/// for each peer its key file and address (only of the family -b gives the
/// UDP socket), user and chroot (root only), OpenSSL with each key (non-root
/// only: the root helper's worker checks it), tun device, UDP socket.
/// It owns the tun and the socket (not copyable): whoever it is handed to
/// consumes it, and takes them over or lets them close. (Frozen so that
/// the single process, in another module, may take the two apart.)
@frozen package struct Prepared: ~Copyable {
    package let config: TunnelConfig
    /// `config.peers`, in order, made ready.
    package private(set) var peers: [PreparedPeer]
    /// The dedicated user (root start only).
    package let user: (name: String, uid: UInt32, gid: UInt32)?
    package let tun: Tun
    package let udp: UDPSocket
    /// This run's session id and start time (PROTOCOL.md §2, §6).
    package var start: RunStart
    /// This end's former sessions, from its session log (set with the pid file held).
    package var formerSessions: [UInt64] = []

    /// The data path runs one peer: the first (and only) one's key.
    package var psk: SecretBytes { peers[0].psk }
    /// The first peer's address; nil: wait for it to send first.
    package var peer: SocketAddress? { peers[0].address }

    /// The number of peers a tunnel runs today (the data path has one peer).
    package static let peerLimit = 1

    package static func prepare(_ config: TunnelConfig, privileged: Bool) throws -> Prepared {
        // Nothing that reads settings gives more yet; a source that does
        // must not have its other peers ignored without a word.
        guard config.peers.count <= peerLimit else {
            throw PrivsepError.tooManyPeers(count: config.peers.count, limit: peerLimit)
        }
        // Only answers the UDP socket can reach: with -b, of its family
        // (checked again below against the socket itself).
        let bindFamily = config.bindAddress.flatMap { SocketAddress.parse(literal: $0, port: 0)?.family }
        var peers: [PreparedPeer] = []
        for settings in config.peers {
            let (psk, share) = try tunnelKey(settings)
            let address = try settings.host.map { host throws(SystemError) in
                try SocketAddress.resolve(host: host, port: settings.port, family: bindFamily,
                                          bindAddress: config.bindAddress)
            }
            peers.append(PreparedPeer(settings: settings, psk: psk, address: address, keyFileShare: share?.fd))
        }
        let user = privileged ? try workerUser(config) : nil
        let start = try RunStart.now()
        // OpenSSL must work with this key before we go on (and before any fork).
        // The root helper leaves that to its worker, the only process that
        // encrypts: initialising OpenSSL here would keep ~2 MiB of libcrypto
        // resident in the helper for its whole life, and the worker's failure
        // reaches the terminal the same way (its one line, exit 1). (A
        // keypair setup has loaded it here already: T is derived by this
        // process, so that the private key never reaches the worker.)
        if !privileged {
            for peer in peers { _ = try TunnelCrypto(suite: config.cipher, psk: peer.psk, start: start, skewSeconds: 0) }
        }
        let tun = try Tun.attach(name: config.interface, offload: config.offload, tap: config.tap)
        let udp = try UDPSocket.open(port: config.localPort, bindAddress: config.bindAddress)
        // Without -b on a kernel without IPv6 the socket is IPv4-only: an
        // IPv6 answer would fail every send, so ask again for IPv4.
        if let family = udp.peerFamily {
            for i in peers.indices {
                guard let host = peers[i].settings.host, peers[i].address?.family != family else { continue }
                peers[i].address = try SocketAddress.resolve(host: host, port: peers[i].settings.port,
                                                             family: family, bindAddress: config.bindAddress)
            }
        }
        return Prepared(config: config, peers: peers, user: user, tun: tun, udp: udp, start: start)
    }

    /// The worker's user and chroot, checked (root start only).
    package static func workerUser(_ config: TunnelConfig) throws -> (name: String, uid: UInt32, gid: UInt32) {
        let (uid, gid) = try Privileges.lookupUser(config.user)
        // Checked again by the worker's drop; said here, before anything starts.
        if uid == 0 || gid == 0 { throw SystemError.targetIsRoot(uid: uid, gid: gid) }
        try Privileges.checkChrootDirectory(config.chrootDirectory)
        return (config.user, uid, gid)
    }

    /// The peer's tunnel key T, read first of everything (for the root
    /// helper: as root, before the worker exists). A PSK is T; a private
    /// key is used here once, with the peer's public key and the optional
    /// PSK, to derive T, and it and the PSK are wiped at once (the X25519
    /// result inside `TunnelKey.derive`): from here on this process holds T
    /// only, which the helper hands to its worker and then wipes too.
    /// A PSK's file is claimed (KeyFileUse); a private key is not: one
    /// host's key with several peers gives each its own T.
    private static func tunnelKey(_ settings: PeerSettings) throws -> (SecretBytes, (fd: FileDescriptor, shared: Bool)?) {
        switch try KeyFile.readTunnelKeys(keyPath: settings.keyPath, peerKey: settings.peerKey, pskPath: settings.pskPath) {
        case .psk(let psk):
            let share = KeyFileUse.claim(path: settings.keyPath)
            if share?.shared == true { Log.warning(KeyFileUse.warning(path: settings.keyPath)) }
            return (psk, share)
        case let .keypair(privateKey, peerPublic, mixed):
            defer {
                privateKey.wipe()
                mixed?.wipe()
            }
            let t = try TunnelKey.derive(privateKey: privateKey, peerPublic: peerPublic, psk: mixed,
                                         algorithms: CryptoAlgorithms())
            return (t, nil)
        }
    }
}

extension Prepared {
    /// Both start modes: everything checked first, errors on the terminal;
    /// then detached unless -f; then the pid file and the status socket,
    /// and `start`, whose result is the exit status. A failure after
    /// detaching reaches the waiting command as its one line.
    package static func run(_ config: TunnelConfig, privileged: Bool,
                    start: (consuming Prepared, _ control: FileDescriptor, _ pidFile: FileDescriptor, Daemonize?) throws -> Int32) throws -> Never {
        let prepared = try prepare(config, privileged: privileged)
        let daemon = config.foreground ? nil : try Daemonize.detach()
        func withRunFiles(_ prepared: consuming Prepared) throws -> Int32 {
            let files = try RunFiles.open(config, start: prepared.start)
            defer { files.close(config) }
            prepared.start = files.start
            prepared.formerSessions = files.formerSessions
            return try start(prepared, files.control, files.pidFile.descriptor, daemon)
        }
        do {
            exit(try withRunFiles(prepared))
        } catch {
            daemon?.fail("\(error)")
            Log.error("\(error)")
            exit(1)
        }
    }
}

/// What a running tunnel end holds beside its devices: the pid file, its
/// session log read (this run's start and the former sessions), the
/// status socket. Both kinds of start open them the same way.
package struct RunFiles {
    package let pidFile: PidFile
    package let control: FileDescriptor
    package let start: RunStart
    package let formerSessions: [UInt64]

    package static func open(_ config: TunnelConfig, start: RunStart) throws -> RunFiles {
        let pidFile = try PidFile.acquire(path: config.pidfile, interface: config.interface)
        if let note = pidFile.note { Log.notice(note) }
        let log = SessionLog.update(path: SessionLog.path(forPidFile: config.pidfile), start: start)
        if let warning = log.warning { Log.warning(warning) }
        do {
            let control = try ControlSocket.listen(path: config.controlSocket)
            return RunFiles(pidFile: pidFile, control: control, start: log.start, formerSessions: log.former)
        } catch {
            _ = pidFile.remove()
            throw error
        }
    }

    /// Under a seccomp filter (the single process) there is no unlink: the
    /// pid file is emptied through the fd it holds, and the next start
    /// takes over both files (PidFile, ControlSocket).
    package func close(_ config: TunnelConfig) {
        if Seccomp.isInstalled {
            pidFile.vacate()
        } else {
            ControlSocket.removeFile(path: config.controlSocket)
            _ = pidFile.remove()
        }
    }
}
