import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Every setup failure of the system layer. Each case carries the data an
/// operator needs (path, interface, port, errno) and renders as ONE line that
/// says what went wrong and what to do. Per-packet calls throw `Errno`
/// instead; they are not shown to operators one by one.
public enum SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    // Addresses and the UDP socket.
    case resolveFailed(host: String, reason: String)
    /// The peer has addresses, none of the one family the UDP socket can
    /// reach; `bindAddress` nil: the kernel has no IPv6.
    case peerFamilyMismatch(host: String, family: SocketAddress.Family, bindAddress: String?)
    case badBindAddress(String)
    case portInUse(port: UInt16, errno: Errno)
    case bindFailed(address: String, port: UInt16, errno: Errno)
    case socketFailed(what: String, operation: String, errno: Errno)

    // The tun device.
    case badInterfaceName(String)
    /// `tap`: a TAP device was asked for (`--tap`).
    case tunMissing(name: String, tap: Bool = false)
    /// A TAP device named without `--tap`, and a tun device named with it.
    case tunIsTap(name: String)
    case tapIsTun(name: String)
    case notATun(name: String, tap: Bool = false)
    case tunWrongOwner(name: String, owner: UInt32, you: UInt32)
    case tunWrongGroup(name: String, group: UInt32, you: UInt32)
    /// Root whose effective capabilities lack CAP_NET_ADMIN; `owner` or
    /// `group` is what the device is restricted to.
    case tunNeedsNetAdmin(name: String, owner: UInt32?, group: UInt32?)
    case tunOpenFailed(errno: Errno)
    case tunAttachFailed(name: String, errno: Errno)
    case tunVanished(name: String)
    /// Server mode: a client tun name pattern that is not letters, digits,
    /// '-', '_', '.' around exactly one "%d", at most 15 bytes.
    case badTunPattern(String)
    /// Server mode: creating a client's tun from `pattern`; `name` once the
    /// kernel has chosen it.
    case clientTunFailed(pattern: String, name: String?, operation: String, errno: Errno)
    /// The server loop's epoll instance.
    case epollFailed(operation: String, errno: Errno)

    // The worker process.
    case spawnFailed(path: String, errno: Errno)

    // Users, chroot, privilege drop, seccomp.
    case userMissing(name: String)
    case userLookupFailed(name: String, errno: Errno)
    case targetIsRoot(uid: UInt32, gid: UInt32)
    case chrootMissing(path: String)
    case chrootUnreadable(path: String, errno: Errno)
    case chrootNotDirectory(path: String)
    case chrootNotRootOwned(path: String, uid: UInt32)
    case chrootWritable(path: String, mode: UInt32)
    case chrootNotEmpty(path: String, entry: String)
    case dropFailed(step: String, errno: Errno)
    case dropNotVerified(check: String)
    case stillRoot
    case noNewPrivsFailed(errno: Errno)
    case seccompFailed(step: String, errno: Errno)

    // Pid file and control socket.
    case alreadyRunning(interface: String, pid: Int32, path: String)
    case pidFileBusy(interface: String, path: String)
    case pidFileFailed(path: String, operation: String, errno: Errno)
    case pidFileNotOurs(path: String, owner: UInt32, you: UInt32)
    case controlNoDaemon(interface: String, path: String, errno: Errno)
    case controlPermission(path: String, errno: Errno)
    case controlTimeout(interface: String, path: String)
    case controlInUse(path: String)
    case controlNotSocket(path: String)
    case controlPathTooLong(path: String)
    case controlFailed(path: String, operation: String, errno: Errno)

    public var description: String {
        switch self {
        case let .resolveFailed(host, reason):
            return "cannot resolve peer \(SharedError.quote(host)): \(reason); check the name given with -p and this host's DNS, or give -p the peer's IP address"
        case let .peerFamilyMismatch(host, family, bind):
            let (want, other) = family == .ipv4 ? ("IPv4", "IPv6") : ("IPv6", "IPv4")
            let why = bind.map { "-b \($0) makes the UDP socket \(want)-only" }
                ?? "this kernel has no IPv6, so the UDP socket is IPv4-only"
            return "peer \(SharedError.quote(host)) has no \(want) address, and \(why); give -p the peer's \(want) address"
                + (bind == nil ? "" : ", or -b an \(other) address (or no -b)")
        case let .badBindAddress(address):
            return "-b \(SharedError.quote(address)): not a numeric IPv4 or IPv6 address; give an address configured on this host"
        case let .portInUse(port, errno):
            return "UDP port \(port) is already in use (bind: \(errno)); see what holds it with: ss -ulpn 'sport = :\(port)', or choose another port with -l"
        case let .bindFailed(address, port, errno):
            return "cannot bind UDP port \(port) on \(address) (bind: \(errno)); -b must be an address configured on this host"
        case let .socketFailed(what, operation, errno):
            return "cannot set up \(what) (\(operation): \(errno))"

        case let .badInterfaceName(name):
            return "interface name \(SharedError.quote(name)) is invalid: use 1 to 15 letters, digits, '-', '_' or '.'"
        case let .tunMissing(name, tap):
            let kind = tap ? "tap" : "tun"
            return "\(kind) device \(name) does not exist; create it with: ip tuntap add dev \(name) mode \(kind) user squtun"
        case let .tunIsTap(name):
            return "\(name) is a TAP device: add --tap, or use a TUN device (ip link del \(name) && ip tuntap add dev \(name) mode tun user squtun)"
        case let .tapIsTun(name):
            return "\(name) is a TUN device and --tap needs a TAP device: leave --tap out, or use a TAP device (ip link del \(name) && ip tuntap add dev \(name) mode tap user squtun)"
        case let .notATun(name, tap):
            let kind = tap ? "tap" : "tun"
            return "interface \(name) is not a \(kind) device; give one made with: ip tuntap add dev NAME mode \(kind) user squtun"
        case let .tunWrongOwner(name, owner, you):
            return "tun device \(name) belongs to uid \(owner), not to uid \(you) (you); run squtun as uid \(owner), or recreate the device as root with: ip link del \(name) && ip tuntap add dev \(name) mode tun user \(you)"
        case let .tunWrongGroup(name, group, you):
            return "tun device \(name) is restricted to gid \(group), which uid \(you) (you) is not in; run squtun with gid \(group), or recreate the device as root with: ip link del \(name) && ip tuntap add dev \(name) mode tun user \(you)"
        case let .tunNeedsNetAdmin(name, owner, group):
            let restriction = owner.map { "belongs to uid \($0)" } ?? group.map { "is restricted to gid \($0)" } ?? "is restricted"
            return "tun device \(name) \(restriction) and this root process lacks CAP_NET_ADMIN (a container, or a capability bounding set without it); give squtun CAP_NET_ADMIN"
        case let .tunOpenFailed(errno):
            return "cannot open /dev/net/tun (\(errno)); load the tun driver with: modprobe tun"
        case let .tunAttachFailed(name, errno):
            let hint: String
            switch errno.rawValue {
            case EBUSY: hint = "is another program attached to it?"
            case EPERM, EACCES: hint = "run as root or as the device's owner"
            case EINVAL: hint = "recreate it with: ip tuntap add dev \(name) mode tun user squtun"
            default: hint = "check the device with: ip -d link show \(name)"
            }
            return "cannot attach to tun device \(name) (TUNSETIFF: \(errno)); \(hint)"
        case let .tunVanished(name):
            return "tun device \(name) was deleted or replaced while squtun attached to it; recreate it with: ip tuntap add dev \(name) mode tun user squtun"
        case let .badTunPattern(pattern):
            return "client tun name pattern \(SharedError.quote(pattern)) is invalid: use letters, digits, '-', '_' or '.' around exactly one %d, at most 15 bytes (e.g. sqc%d)"
        case let .clientTunFailed(pattern, name, operation, errno):
            let device = name.map { "client tun device \($0) (from \(pattern))" } ?? "a client tun device from \(pattern)"
            let hint: String
            switch errno.rawValue {
            case EPERM, EACCES: hint = "the root helper needs CAP_NET_ADMIN"
            case ENFILE: hint = "every number for %d is taken: give -i a shorter pattern or remove unused devices"
            case ENOENT, ENODEV: hint = "load the tun driver with: modprobe tun"
            default: hint = "check the kernel log"
            }
            return "cannot create \(device) (\(operation): \(errno)); \(hint)"
        case let .epollFailed(operation, errno):
            return "cannot set up the server's event loop (\(operation): \(errno))"

        case let .spawnFailed(path, errno):
            return "cannot start the worker process (posix_spawn \(path): \(errno))"

        case let .userMissing(name):
            return "user \(SharedError.quote(name)) does not exist; create it with: adduser --system --group --no-create-home \(name)"
        case let .userLookupFailed(name, errno):
            return "cannot look up user \(SharedError.quote(name)) (getpwnam_r: \(errno)); check /etc/nsswitch.conf"
        case let .targetIsRoot(uid, gid):
            return "refusing to drop privileges to uid \(uid) gid \(gid): the worker must run as an unprivileged user and group; create one with: adduser --system --group --no-create-home squtun"
        case let .chrootMissing(path):
            return "chroot directory \(path) does not exist; create it with: mkdir -p \(path) && chmod 755 \(path)"
        case let .chrootUnreadable(path, errno):
            return "cannot check chroot directory \(path) (\(errno)); create it with: mkdir -p \(path) && chmod 755 \(path)"
        case let .chrootNotDirectory(path):
            return "chroot directory \(path) is not a directory; give --chroot an empty directory, e.g.: mkdir -p /var/lib/squtun/empty && chmod 755 /var/lib/squtun/empty"
        case let .chrootNotRootOwned(path, uid):
            return "chroot directory \(path) is owned by uid \(uid), not root; fix it with: chown root:root \(path)"
        case let .chrootWritable(path, mode):
            return "chroot directory \(path) has mode \(SharedError.octal(mode)) and is writable by group or others; fix it with: chmod 755 \(path)"
        case let .chrootNotEmpty(path, entry):
            return "chroot directory \(path) is not empty (it contains \(SharedError.quote(entry))); empty it, or give --chroot an empty directory, e.g.: mkdir -p /var/lib/squtun/empty && chmod 755 /var/lib/squtun/empty"
        case let .dropFailed(step, errno):
            return "cannot drop privileges: \(step) failed (\(errno)); refusing to run"
        case let .dropNotVerified(check):
            return "privilege drop did not take effect (\(check)); refusing to run"
        case .stillRoot:
            return "running as root without a privilege drop; refusing to run (use -u USER)"
        case let .noNewPrivsFailed(errno):
            return "cannot set no_new_privs (prctl: \(errno)); refusing to run"
        case let .seccompFailed(step, errno):
            return "cannot install the seccomp filter (\(step): \(errno)); the kernel needs CONFIG_SECCOMP_FILTER"

        case let .alreadyRunning(interface, pid, path):
            return "squtun is already running for \(interface) (pid \(pid), \(path)); stop it first with: kill \(pid) (if pid \(pid) is not squtun, the pid file is stale: remove \(path))"
        case let .pidFileBusy(interface, path):
            return "another squtun for \(interface) is starting right now (\(path) is locked); wait and check with: squtun status"
        case let .pidFileFailed(path, operation, errno):
            return "cannot write pid file \(path) (\(operation): \(errno)); give a writable path with --pidfile"
        case let .pidFileNotOurs(path, owner, you):
            return "pid file \(path) belongs to uid \(owner), not to uid \(you) (you), and squtun may not replace it; if no squtun uses it, remove it as root (rm \(path)), or give another path with --pidfile"
        case let .controlNoDaemon(interface, path, errno):
            return "no squtun is running for \(interface) (\(path): \(errno))"
        case let .controlPermission(path, errno):
            return "cannot connect to \(path) (\(errno)); squtun status must run as root"
        case let .controlTimeout(interface, path):
            return "squtun for \(interface) did not answer on \(path) within 2 s; it may be stuck"
        case let .controlInUse(path):
            return "control socket \(path) is in use by another process; is another squtun running for this interface?"
        case let .controlNotSocket(path):
            return "\(path) exists and is not a socket; remove it (squtun will not delete it)"
        case let .controlPathTooLong(path):
            return "control socket path \(path) is longer than 107 bytes; use a shorter --pidfile directory"
        case let .controlFailed(path, operation, errno):
            return "control socket \(path): \(operation) failed (\(errno))"
        }
    }
}
