import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Server mode: the root helper CREATES a tun device per client (unlike
/// point-to-point mode, where squtun only attaches to the operator's
/// device). The device is not persistent: it exists exactly as long as an
/// fd of it is open, so it goes when the worker closes the client (or dies),
/// or when the helper closes its fd after a failed hook.
public enum ClientTun {
    public static let TUNSETOWNER: UInt = 0x4004_54cc
    public static let TUNSETGROUP: UInt = 0x4004_54ce
    static let SIOCGIFFLAGS: UInt = 0x8913
    static let SIOCSIFFLAGS: UInt = 0x8914
    static let SIOCSIFMTU: UInt = 0x8922
    static let IFF_UP: UInt16 = 0x1

    /// A name pattern the kernel numbers: interface-name bytes
    /// (`Tun.isNameByte`) around exactly one "%d", and no other '%', at most
    /// 15 bytes (IFNAMSIZ - 1) as written. A name without "%d" would make
    /// TUNSETIFF attach to an existing device of that name instead.
    public static func isValidPattern(_ pattern: String) -> Bool {
        let bytes = Array(pattern.utf8)
        guard bytes.count <= Tun.maxNameLength,
              let percent = bytes.firstIndex(of: UInt8(ascii: "%")),
              percent + 1 < bytes.count, bytes[percent + 1] == UInt8(ascii: "d") else { return false }
        var rest = bytes
        rest.removeSubrange(percent...(percent + 1))
        return rest.allSatisfy(Tun.isNameByte) && pattern != "%d"
    }

    /// Creates a tun device named from `pattern` (the kernel puts the
    /// lowest free number in place of "%d"), IFF_TUN | IFF_NO_PI, owned by
    /// `uid` and group `gid` (the worker's, so that it may use the fd), with
    /// `mtu`, and up. Returns the fd (non-blocking, close-on-exec: the
    /// caller's to close or send) and the device's name. Needs
    /// CAP_NET_ADMIN. On any failure the fd is closed, so no device is left.
    public static func create(pattern: String, uid: UInt32, gid: UInt32, mtu: Int) throws(SystemError)
        -> (fd: FileDescriptor, name: String)
    {
        guard isValidPattern(pattern) else { throw .badTunPattern(pattern) }
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try FileDescriptor.open(Tun.devicePath, O_RDWR | O_NONBLOCK)
        } catch {
            throw .tunOpenFailed(errno: error)
        }
        var name: String? = nil
        do throws(StepFailed) {
            var request = InterfaceRequest(name: pattern)
            request.flags = TunFlags([.tun, .noPacketInfo]).rawValue
            try request.perform(fd, Tun.TUNSETIFF, "TUNSETIFF")
            name = request.name
            try perform(fd, TUNSETOWNER, uid, "TUNSETOWNER")
            try perform(fd, TUNSETGROUP, gid, "TUNSETGROUP")
            try configure(name: request.name, mtu: mtu)
        } catch {
            fd.close()
            throw .clientTunFailed(pattern: pattern, name: name, operation: error.operation, errno: error.errno)
        }
        return (fd, name!)
    }

    /// MTU and link up, by name, through a datagram socket (what `ip link
    /// set NAME mtu M up` does).
    private static func configure(name: String, mtu: Int) throws(StepFailed) {
        let raw = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw StepFailed(operation: "socket", errno: .current) }
        let socketFD = FileDescriptor(rawValue: raw)
        defer { socketFD.close() }
        var request = InterfaceRequest(name: name)
        request.value = Int32(clamping: mtu)
        try request.perform(socketFD, SIOCSIFMTU, "SIOCSIFMTU")
        request = InterfaceRequest(name: name)
        try request.perform(socketFD, SIOCGIFFLAGS, "SIOCGIFFLAGS")
        request.flags |= IFF_UP
        try request.perform(socketFD, SIOCSIFFLAGS, "SIOCSIFFLAGS")
    }

    /// An ioctl whose argument is a number (the kernel reads the 32 bits of a uid or gid).
    private static func perform(_ fd: FileDescriptor, _ request: UInt, _ argument: UInt32, _ operation: String) throws(StepFailed) {
        do throws(Errno) {
            _ = try retryingEINTR { ioctl(fd.rawValue, request, CInt(bitPattern: argument)) }
        } catch {
            throw StepFailed(operation: operation, errno: error)
        }
    }
}

/// struct ifreq (linux/if.h): the interface name (16 bytes, NUL-padded),
/// then a union whose members squtun uses are ifr_flags (16 bits) and
/// ifr_mtu (32 bits); 40 bytes in all. The tun ioctls (TUNSETIFF,
/// TUNGETIFF) and the interface ioctls (SIOC*IF*) take one.
struct InterfaceRequest {
    private var storage: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
    private static let unionOffset = 16

    /// `name` cut to IFNAMSIZ - 1 bytes; the rest zero.
    init(name: String) {
        withUnsafeMutableBytes(of: &storage) { bytes in
            for (i, byte) in name.utf8.prefix(Tun.maxNameLength).enumerated() { bytes[i] = byte }
        }
    }

    /// The name as it is now (the kernel writes the chosen one back).
    var name: String {
        withUnsafeBytes(of: storage) { bytes in
            let field = bytes.prefix(Self.unionOffset)
            return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// ifr_flags.
    var flags: UInt16 {
        get { withUnsafeBytes(of: storage) { $0.load(fromByteOffset: Self.unionOffset, as: UInt16.self) } }
        set { withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: newValue, toByteOffset: Self.unionOffset, as: UInt16.self) } }
    }

    /// ifr_mtu (and the union's other int members).
    var value: Int32 {
        get { withUnsafeBytes(of: storage) { $0.load(fromByteOffset: Self.unionOffset, as: Int32.self) } }
        set { withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: newValue, toByteOffset: Self.unionOffset, as: Int32.self) } }
    }

    /// ioctl(fd, request, &ifreq), retried on EINTR.
    mutating func perform(_ fd: FileDescriptor, _ request: UInt) throws(Errno) {
        _ = try retryingEINTR { withUnsafeMutableBytes(of: &storage) { ioctl(fd.rawValue, request, $0.baseAddress!) } }
    }
}

/// A failed step of ClientTun.create: which, and why.
private struct StepFailed: Error {
    let operation: String
    let errno: Errno
}

extension InterfaceRequest {
    /// The same, failing as a named step of ClientTun.create.
    fileprivate mutating func perform(_ fd: FileDescriptor, _ request: UInt, _ operation: String) throws(StepFailed) {
        do throws(Errno) { try perform(fd, request) } catch { throw StepFailed(operation: operation, errno: error) }
    }
}
