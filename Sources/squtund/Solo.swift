import SqutunSystem
import SqutunDataPath
import SqutunPrivsep
import Glibc
import Shared
import SqutunConfig
import squtun_crypto

/// Started by a non-root user who owns the tun device (SquTUN's
/// `su squtun -c 'squtun …'`): one process, the same data path and the same
/// seccomp filter; no chroot or user change is possible, which it logs.
/// Everything it needs outside the data path is opened before the filter:
/// the syslog socket, the pid file (emptied at exit through its fd).
enum Solo {
    static func run(_ config: TunnelConfig) throws -> Never {
        if config.server != nil { throw PrivsepError.serverNeedsRoot }
        try Prepared.run(config, privileged: false, start: start)
    }

    private static func start(_ p: consuming Prepared, control: FileDescriptor, pidFile: FileDescriptor, daemon: Daemonize?) throws -> Int32 {
        let config = p.config, peer = p.peer
        let crypto = try TunnelCrypto(suite: config.cipher, psk: p.psk, start: p.start, formerSessions: p.formerSessions,
                                      skewSeconds: config.skewSeconds,
                                      keyId: config.clientID.map(ClientKeyID.keyId(for:)) ?? 0,
                                      ethernet: config.tap)
        let wake = try Signals.install()
        let uid = getuid()
        Log.notice("running as uid \(uid), not root: no chroot and no user change possible")
        // Before the filter: the syslog socket (the filter has no socket or connect).
        Log.forDataPath()
        try Privileges.unprivilegedHardening()
        try Seccomp.install(mode: .singleProcess, tunFD: p.tun.vnetHeader ? p.tun.fd.rawValue : nil,
                            pidFileFD: pidFile.rawValue)
        Log.notice("tunnel on \(config.interface) is up" + (peer.map { ", peer \($0)" } ?? ", waiting for the peer"))
        daemon?.succeed()
        let path = DataPath(
            settings: .init(interface: config.interface, keepaliveMs: UInt64(config.keepaliveSeconds) * 1000,
                            configuredPeer: peer, statusUID: uid),
            tun: p.tun, udp: p.udp, wake: wake, channel: nil, control: control,
            crypto: crypto, log: Log.write,
            logLinesDropped: { Log.droppedLines })
        let end = path.run()
        // No helper to do it: the device's offloads off again (Tun.clearOffloads).
        path.switchTunOffloadsOff()
        return DataPath.exitStatus(end)
    }
}
