import SqutunSystem
import SqutunDataPath
import Glibc
import Shared
import SqutunConfig
import squtun_crypto

/// What both start modes (root helper, unprivileged single process) open and
/// check before anything runs, in this order, each failure one line:
/// key file, peer address (only of the family -b gives the UDP socket),
/// user and chroot (root only), OpenSSL with this key (non-root only: the
/// root helper's worker checks it), tun device, UDP socket.
package struct Prepared {
    package let config: TunnelConfig
    package let psk: SecretBytes
    package let peer: SocketAddress?
    /// The dedicated user (root start only).
    package let user: (name: String, uid: UInt32, gid: UInt32)?
    package let tun: Tun
    package let udp: UDPSocket
    /// This run's session id and start time (PROTOCOL.md §2, §6).
    package var start: RunStart
    /// This end's former sessions, from its session log (set with the pid file held).
    package var formerSessions: [UInt64] = []
    /// The key file, held open for this run's life (KeyFileUse).
    package let keyFileShare: FileDescriptor?

    package static func prepare(_ config: TunnelConfig, privileged: Bool) throws -> Prepared {
        let psk = try KeyFile.read(path: config.keyPath)
        let share = KeyFileUse.claim(path: config.keyPath)
        if share?.shared == true { Log.warning(KeyFileUse.warning(path: config.keyPath)) }
        // Only answers the UDP socket can reach: with -b, of its family
        // (checked again below against the socket itself).
        let bindFamily = config.bindAddress.flatMap { SocketAddress.parse(literal: $0, port: 0)?.family }
        var peer = try config.peer.map { host throws(SystemError) in
            try SocketAddress.resolve(host: host, port: config.remotePort, family: bindFamily,
                                      bindAddress: config.bindAddress)
        }
        var user: (String, UInt32, UInt32)?
        if privileged {
            let (uid, gid) = try Privileges.lookupUser(config.user)
            // Checked again by the worker's drop; said here, before anything starts.
            if uid == 0 || gid == 0 { throw SystemError.targetIsRoot(uid: uid, gid: gid) }
            try Privileges.checkChrootDirectory(config.chrootDirectory)
            user = (config.user, uid, gid)
        }
        let start = try RunStart.now()
        // OpenSSL must work with this key before we go on (and before any fork).
        // The root helper leaves that to its worker, the only process that
        // encrypts: initialising OpenSSL here would keep ~2 MiB of libcrypto
        // resident in the helper for its whole life, and the worker's failure
        // reaches the terminal the same way (its one line, exit 1).
        if !privileged {
            _ = try TunnelCrypto(psk: psk, start: start, skewSeconds: 0)
        }
        let tun = try Tun.attach(name: config.interface, offload: config.offload)
        let udp = try UDPSocket.open(port: config.localPort, bindAddress: config.bindAddress)
        // Without -b on a kernel without IPv6 the socket is IPv4-only: an
        // IPv6 answer would fail every send, so ask again for IPv4.
        if let host = config.peer, let family = udp.peerFamily, peer?.family != family {
            peer = try SocketAddress.resolve(host: host, port: config.remotePort, family: family,
                                             bindAddress: config.bindAddress)
        }
        return Prepared(config: config, psk: psk, peer: peer, user: user, tun: tun, udp: udp,
                        start: start, keyFileShare: share?.fd)
    }
}

extension Prepared {
    /// Both start modes: everything checked first, errors on the terminal;
    /// then detached unless -f; then the pid file and the status socket,
    /// and `start`, whose result is the exit status. A failure after
    /// detaching reaches the waiting command as its one line.
    package static func run(_ config: TunnelConfig, privileged: Bool,
                    start: (Prepared, _ control: FileDescriptor, _ pidFile: FileDescriptor, Daemonize?) throws -> Int32) throws -> Never {
        var prepared = try prepare(config, privileged: privileged)
        let daemon = config.foreground ? nil : try Daemonize.detach()
        func withRunFiles() throws -> Int32 {
            let pidFile = try PidFile.acquire(path: config.pidfile, interface: config.interface)
            if let note = pidFile.note { Log.notice(note) }
            // Under a seccomp filter (the single process) there is no
            // unlink: the pid file is emptied through the fd it holds, and
            // the next start takes over both files (PidFile, ControlSocket).
            defer { if Seccomp.isInstalled { pidFile.vacate() } else { pidFile.remove() } }
            let log = SessionLog.update(path: SessionLog.path(forPidFile: config.pidfile), start: prepared.start)
            if let warning = log.warning { Log.warning(warning) }
            prepared.start = log.start
            prepared.formerSessions = log.former
            let control = try ControlSocket.listen(path: config.controlSocket)
            defer { if !Seccomp.isInstalled { ControlSocket.removeFile(path: config.controlSocket) } }
            return try start(prepared, control, pidFile.descriptor, daemon)
        }
        do {
            exit(try withRunFiles())
        } catch {
            daemon?.fail("\(error)")
            Log.error("\(error)")
            exit(1)
        }
    }
}
