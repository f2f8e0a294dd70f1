import SqutunSystem
import SqutunDataPath
import Glibc
import CShim
import Shared
import SqutunConfig
import squtun_crypto

/// The unprivileged worker: `squtun --worker`, spawned by the root helper
/// with the channel on fd 3. Before it touches a packet, in this order:
///  1. receives exactly `config`, `key`, `fds` (anything else: exit);
///  2. initialises OpenSSL and derives its session keys (nothing of
///     OpenSSL's may load lazily after the chroot);
///  3. installs the signal handlers (SIGTERM/INT/HUP/USR1 → wake pipe);
///  4. drops privileges: chroot, chdir, groups, gid, uid, verified, no_new_privs;
///  5. installs the seccomp allow-list;
///  6. tells the helper `ready`, then runs the data path.
package enum Worker {
    package static let channelFD: Int32 = 3
    /// The worker's name in ps, top and pgrep (comm, at most 15 bytes).
    package static let processName = "squtun-worker"

    package static func main() -> Never {
        // Before the key arrives: exec made this process dumpable again.
        let dumpable = squtun_no_core_dumps()
        // A name an operator recognises in ps/top/pgrep (failure leaves
        // "exe", which is harmless).
        _ = squtun_set_name(processName)
        let channel = Channel(fd: FileDescriptor(rawValue: channelFD))
        Log.sink = .channel(channel)
        Log.forDataPath()
        if dumpable != 0 {
            Log.error("worker: cannot switch core dumps off (prctl: \(Errno.current))")
            exit(1)
        }
        do {
            exit(try run(channel))
        } catch {
            Log.error("\(error)")
            exit(1)
        }
    }

    private static func run(_ channel: Channel) throws -> Int32 {
        // 1. Setup messages, in this order.
        guard case .config(let config) = try channel.receive(from: .helper) else {
            throw PrivsepError.unexpectedMessage("config")
        }
        guard case .key(let psk) = try channel.receive(from: .helper) else {
            throw PrivsepError.unexpectedMessage("key")
        }
        guard case .fds(let tunFD, let udpFD, let controlFD) = try channel.receive(from: .helper) else {
            throw PrivsepError.unexpectedMessage("fds")
        }
        let tun = Tun(adopting: tunFD, name: config.interface)
        let udp = try UDPSocket(adopting: udpFD)

        // 2. OpenSSL, before the chroot.
        // The helper read both clocks a moment ago; the monotonic one, which
        // the channel does not carry, is found again from the time since.
        let wallNow = WallClock.nowMs(), monotonicNow = MonotonicClock.nowMs()
        let since = wallNow >= config.startTimeMs ? wallNow - config.startTimeMs : 0
        let start = RunStart(session: config.session, wallMs: config.startTimeMs, monotonicMs: monotonicNow &- since)
        let crypto = try TunnelCrypto(psk: psk, start: start, formerSessions: config.formerSessions,
                                      skewSeconds: Int(config.skewSeconds))
        // The PSK stays: the opener derives keys for the peer's next session.

        // 3. Signals.
        let wake = try Signals.install()

        // 4. Privileges.
        if config.dropPrivileges {
            try Privileges.dropPrivileges(chroot: config.chrootPath, uid: config.uid, gid: config.gid)
        } else {
            try Privileges.unprivilegedHardening()
        }
        // 5. Seccomp.
        try Seccomp.install()

        // 6. Run.
        try channel.send(.ready)
        #if DEBUG
        WorkerFault.act(channel: channel)
        #endif
        let path = DataPath(
            settings: .init(interface: config.interface, keepaliveMs: UInt64(config.keepaliveSeconds) * 1000,
                            configuredPeer: config.peer),
            tun: tun, udp: udp, wake: wake, channel: channel.fd, control: controlFD,
            sealer: crypto.sealer, opener: crypto.opener, log: Log.write,
            logLinesDropped: { Log.droppedLines })
        return DataPath.exitStatus(path.run())
    }
}

extension DataPath {
    /// The process exit status for how the data path ended, logged.
    package static func exitStatus(_ end: DataPathExit) -> Int32 {
        switch end {
        case .signal(let s):
            Log.notice("stopping on signal \(s)")
            return 0
        case .channelClosed:
            return 1  // the helper is gone: nobody to log to
        case .tunGone(let why):
            Log.error(why)
            return 1
        case .fatal(let why):
            Log.error(why)
            return 1
        }
    }
}
