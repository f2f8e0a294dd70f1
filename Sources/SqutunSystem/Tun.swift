import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// The `ifr_flags` bits of TUNSETIFF (linux/if_tun.h) and of
/// /sys/class/net/NAME/tun_flags: a tun device (IP packets) or, with
/// `--tap`, a TAP device (Ethernet frames).
public struct TunFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let tun = TunFlags(rawValue: 0x0001)          // IFF_TUN: IP packets
    public static let tap = TunFlags(rawValue: 0x0002)          // IFF_TAP: Ethernet frames (--tap)
    public static let multiQueue = TunFlags(rawValue: 0x0100)   // IFF_MULTI_QUEUE
    public static let persist = TunFlags(rawValue: 0x0800)      // IFF_PERSIST (made by ip tuntap)
    public static let noPacketInfo = TunFlags(rawValue: 0x1000) // IFF_NO_PI: no 4-byte header per packet
    public static let vnetHeader = TunFlags(rawValue: 0x4000)   // IFF_VNET_HDR: a virtio_net_hdr per packet
}

/// TUNSETOFFLOAD's bits (linux/if_tun.h): what the kernel may leave to us.
public struct TunOffloads: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let checksum = TunOffloads(rawValue: 0x01)  // TUN_F_CSUM: checksums left partial
    public static let tso4 = TunOffloads(rawValue: 0x02)      // TUN_F_TSO4: TCP/IPv4 super-packets
    public static let tso6 = TunOffloads(rawValue: 0x04)      // TUN_F_TSO6: TCP/IPv6 super-packets
    public static let uso4 = TunOffloads(rawValue: 0x20)      // TUN_F_USO4: UDP/IPv4 super-packets (Linux 6.2)
    public static let uso6 = TunOffloads(rawValue: 0x40)      // TUN_F_USO6: UDP/IPv6 super-packets
}

/// An fd attached to a PRE-CREATED tun device. squtun never creates or
/// configures interfaces (`ip tuntap add dev NAME mode tun user squtun` and
/// the addresses/routes are the operator's). Reads and writes are one IP
/// packet each, non-blocking; with `vnetHeader`, each behind the 10-byte
/// `VirtioNetHeader`, and a read may be a TCP super-packet to segment.
///
/// It owns its fd: not copyable, closed exactly once, by `close()` or when
/// the owner goes away; `release()` gives the fd up unclosed, to be sent to
/// another process. `fd` is a view for I/O and poll(2), not for closing.
public struct Tun: ~Copyable, Sendable {
    public let name: String
    private let owned: OwnedDescriptor
    public var fd: FileDescriptor { owned.fd }
    /// The device's owner uid / group gid, nil when unrestricted (-1).
    public let owner: UInt32?
    public let group: UInt32?
    /// Attached with IFF_VNET_HDR and TSO/checksum offloads on.
    public let vnetHeader: Bool
    /// UDP segmentation offload on too: UDP super-packets may be read and written.
    public let udpOffload: Bool
    /// A TAP device (IFF_TAP): each read and write is one Ethernet frame,
    /// never with a virtio header (see `attach`).
    public let isTap: Bool

    public static let devicePath = "/dev/net/tun"
    public static let TUNSETIFF: UInt = 0x4004_54ca
    public static let TUNSETOFFLOAD: UInt = 0x4004_54d0
    public static let TUNGETIFF: UInt = 0x8004_54d2
    /// What squtun takes on when offloads are wanted, best first: a kernel
    /// without USO (before 6.2) still gets TSO.
    public static let offloadChoices: [TunOffloads] = [[.checksum, .tso4, .tso6, .uso4, .uso6], [.checksum, .tso4, .tso6]]

    /// Switches the device's offloads to the best choice it takes; nil if none.
    public static func negotiateOffloads(_ fd: FileDescriptor, choices: [TunOffloads] = offloadChoices) -> TunOffloads? {
        choices.first { ioctl(fd.rawValue, TUNSETOFFLOAD, CInt($0.rawValue)) == 0 }
    }

    /// Wraps an fd the helper attached (the worker side). Asks the kernel
    /// (TUNGETIFF) whether it was attached with IFF_VNET_HDR, and which
    /// offloads the device takes (negotiated again: the same answer as the
    /// helper's), so that the helper's choice needs no field in the channel
    /// protocol. Call before seccomp (no ioctl is allowed after). Takes
    /// over closing `fd`.
    public init(adopting fd: FileDescriptor, name: String) {
        var request = InterfaceRequest(name: "")
        let flags: UInt16 = (try? request.perform(fd, Self.TUNGETIFF)) != nil ? request.flags : 0
        let vnet = TunFlags(rawValue: flags).contains(.vnetHeader)
        let offloads = vnet ? Self.negotiateOffloads(fd) : nil
        self.init(name: name, fd: fd, owner: nil, group: nil, vnetHeader: vnet,
                  udpOffload: offloads?.contains(.uso4) ?? false, isTap: TunFlags(rawValue: flags).contains(.tap))
    }

    /// Wraps the fd of a tun the root helper made without IFF_VNET_HDR (a
    /// server's client tun): no ioctl, so a seccomp-filtered worker can take
    /// it at any time. Takes over closing `fd`.
    public init(adoptingPlain fd: FileDescriptor, name: String) {
        self.init(name: name, fd: fd, owner: nil, group: nil, vnetHeader: false, udpOffload: false, isTap: false)
    }

    private init(name: String, fd: FileDescriptor, owner: UInt32?, group: UInt32?, vnetHeader: Bool,
                 udpOffload: Bool, isTap: Bool) {
        self.name = name
        self.owned = OwnedDescriptor(fd)
        self.owner = owner
        self.group = group
        self.vnetHeader = vnetHeader
        self.udpOffload = udpOffload
        self.isTap = isTap
    }

    /// Interface names squtun accepts: 1...15 bytes (IFNAMSIZ - 1) of
    /// letters, digits, '-', '_', '.', not "." or "..". The name goes into
    /// /sys paths and into messages, so nothing else is let through.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard (1...maxNameLength).contains(bytes.count), name != ".", name != ".." else { return false }
        return bytes.allSatisfy(isNameByte)
    }

    /// IFNAMSIZ - 1.
    public static let maxNameLength = 15

    /// The bytes an interface name may have: what the kernel's
    /// dev_valid_name() accepts, narrowed to characters that are safe in
    /// file names and logs. The option check says which rule a name breaks.
    public static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
    }

    /// Attaches to the existing tun device `name` (with `tap`, the existing
    /// TAP device). Checks, in this order: it exists (TUNSETIFF as root
    /// would otherwise CREATE it), it is of the kind asked for (a tun, not a
    /// TAP device, or the other way round; not another kind of interface),
    /// and a non-root caller owns it; then opens /dev/net/tun and attaches
    /// with IFF_TUN (IFF_TAP) | IFF_NO_PI, and with `offload` also
    /// IFF_VNET_HDR and TUNSETOFFLOAD (a kernel that refuses the offloads
    /// gets a plain attach instead).
    /// A TAP device is always attached without IFF_VNET_HDR (`offload` is
    /// ignored): the merging and splitting of the offload path read the IP
    /// header at offset 0, where a TAP device has its Ethernet header.
    public static func attach(name: String, offload: Bool = true, tap: Bool = false) throws(SystemError) -> Tun {
        guard isValidName(name) else { throw .badInterfaceName(name) }
        let index = if_nametoindex(name)
        guard index != 0 else { throw .tunMissing(name: name, tap: tap) }

        guard let flagsText = readSysfs(name, "tun_flags"), let flagsValue = parseNumber(flagsText) else {
            throw .notATun(name: name, tap: tap)
        }
        let present = TunFlags(rawValue: UInt16(truncatingIfNeeded: flagsValue))
        if !tap && present.contains(.tap) { throw .tunIsTap(name: name) }
        if tap && present.contains(.tun) { throw .tapIsTun(name: name) }
        guard present.contains(tap ? .tap : .tun) else { throw .notATun(name: name, tap: tap) }
        let owner = readSysfs(name, "owner").flatMap(parseNumber).flatMap { $0 < 0 ? nil : UInt32(truncatingIfNeeded: $0) }
        let group = readSysfs(name, "group").flatMap(parseNumber).flatMap { $0 < 0 ? nil : UInt32(truncatingIfNeeded: $0) }

        if !hasNetAdmin() {
            try checkAccess(name: name, owner: owner, group: group, euid: geteuid(), isMember: isInGroup)
        }

        let fd: FileDescriptor
        do throws(Errno) {
            fd = try FileDescriptor.open(devicePath, O_RDWR | O_NONBLOCK)
        } catch {
            throw .tunOpenFailed(errno: error)
        }
        // A multi_queue device refuses a single-queue attach (EINVAL); ask
        // for what it is. Packet-info and the rest are ours to choose.
        let offload = offload && !tap
        var request: TunFlags = [tap ? .tap : .tun, .noPacketInfo]
        if present.contains(.multiQueue) { request.insert(.multiQueue) }
        if offload { request.insert(.vnetHeader) }
        var ifreq = InterfaceRequest(name: name)
        ifreq.flags = request.rawValue
        do throws(Errno) {
            try ifreq.perform(fd, TUNSETIFF)
        } catch {
            fd.close()
            throw .tunAttachFailed(name: name, errno: error)
        }
        // Closes the race with `ip link del` between the check and the ioctl:
        // had TUNSETIFF created a new device, its index would differ. Closing
        // our fd then removes that non-persistent device again.
        guard if_nametoindex(name) == index else {
            fd.close()
            throw .tunVanished(name: name)
        }
        // The offloads are the device's (they outlive us): set them to what
        // this fd can take, also to none, so that a super-packet never
        // reaches a reader without a virtio header.
        guard offload else {
            _ = ioctl(fd.rawValue, TUNSETOFFLOAD, CInt(0))
            return Tun(name: name, fd: fd, owner: owner, group: group, vnetHeader: false, udpOffload: false,
                       isTap: tap)
        }
        guard let offloads = negotiateOffloads(fd) else {
            fd.close()
            return try attach(name: name, offload: false)
        }
        return Tun(name: name, fd: fd, owner: owner, group: group, vnetHeader: true,
                   udpOffload: offloads.contains(.uso4), isTap: false)
    }

    /// Leaves the device as squtun found it: offloads off, so that a later
    /// reader without virtio headers is never handed a super-packet. Best
    /// effort, after the worker is gone (the device may be gone too; attach
    /// never creates one).
    public static func clearOffloads(name: String) {
        if let tun = try? attach(name: name, offload: false) { tun.close() }
    }

    /// The same through this fd (the single process, whose seccomp filter
    /// allows exactly this ioctl).
    public func switchOffloadsOff() {
        _ = ioctl(fd.rawValue, Self.TUNSETOFFLOAD, CInt(0))
    }

    /// The kernel's rule (tun_not_capable) for callers without CAP_NET_ADMIN:
    /// a set owner must be our euid and a set group must be one of ours.
    /// (With neither set, anyone may attach.)
    /// Root without CAP_NET_ADMIN (a container, a unit with a narrower
    /// bounding set) is told that, not to become another uid.
    public static func checkAccess(name: String, owner: UInt32?, group: UInt32?, euid: UInt32,
                            isMember: (UInt32) -> Bool) throws(SystemError) {
        let ownerRefuses = owner.map { $0 != euid } ?? false
        let groupRefuses = group.map { !isMember($0) } ?? false
        if euid == 0 && (ownerRefuses || groupRefuses) {
            throw .tunNeedsNetAdmin(name: name, owner: ownerRefuses ? owner : nil, group: ownerRefuses ? nil : group)
        }
        if let owner, ownerRefuses { throw .tunWrongOwner(name: name, owner: owner, you: euid) }
        if let group, groupRefuses { throw .tunWrongGroup(name: name, group: group, you: euid) }
    }

    /// One packet into `buffer` (size it for the MTU). Nil when none is waiting.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        try fd.read(into: buffer)
    }

    /// One packet to the kernel. False if it was not taken (would block).
    /// EIO means the interface is down.
    @inline(__always)
    public func write(_ packet: UnsafeRawBufferPointer) throws(Errno) -> Bool {
        try fd.write(packet) != nil
    }

    public consuming func close() { owned.close() }

    /// Ends ownership without closing: the fd, still open, is the caller's
    /// to close (after sending it to the process that takes it over).
    public consuming func release() -> FileDescriptor { owned.release() }

    // MARK: Helpers

    /// Contents of /sys/class/net/NAME/FILE (small files only), or nil.
    private static func readSysfs(_ name: String, _ file: String) -> String? {
        guard let fd = try? FileDescriptor.open("/sys/class/net/\(name)/\(file)", O_RDONLY) else { return nil }
        defer { fd.close() }
        return withUnsafeTemporaryAllocation(byteCount: 64, alignment: 1) { buffer -> String? in
            guard let n = (try? fd.read(into: buffer)).flatMap({ $0 }), n > 0 else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[0..<n]), as: UTF8.self)
        }
    }

    /// "0x1002\n" or "-1\n" or "1001\n".
    public static func parseNumber(_ text: String) -> Int64? {
        let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == " " }).first.map(String.init) ?? ""
        if trimmed.hasPrefix("0x") { return Int64(trimmed.dropFirst(2), radix: 16) }
        return Int64(trimmed)
    }

    /// CAP_NET_ADMIN (12) in the effective set: root, or a capability-granted service.
    public static func hasNetAdmin() -> Bool {
        var effective: UInt64 = 0, permitted: UInt64 = 0, inheritable: UInt64 = 0
        guard squtun_capget(&effective, &permitted, &inheritable) == 0 else { return geteuid() == 0 }
        return effective & (1 << 12) != 0
    }

    private static func isInGroup(_ gid: UInt32) -> Bool {
        if getegid() == gid { return true }
        let count = getgroups(0, nil)
        guard count > 0 else { return false }
        var groups = [gid_t](repeating: 0, count: Int(count))
        let got = getgroups(count, &groups)
        return got > 0 && groups[0..<Int(got)].contains(gid)
    }
}
