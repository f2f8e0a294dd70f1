import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// The tunnel's one UDP socket: non-blocking, close-on-exec, large buffers.
/// Without -b it is a dual-stack AF_INET6 socket on `::` (IPv4 peers appear
/// as mapped addresses, which `receive` returns unmapped), or AF_INET on
/// 0.0.0.0 if the kernel has no IPv6. With -b it has that address's family.
///
/// It owns its fd: not copyable, closed exactly once, by `close()` or when
/// the owner goes away; `release()` gives the fd up unclosed, to be sent to
/// another process. `fd` is a view for I/O and poll(2), not for closing.
public struct UDPSocket: ~Copyable, Sendable {
    private let owned: OwnedDescriptor
    public var fd: FileDescriptor { owned.fd }
    /// The socket's own family: `.ipv6` means dual-stack unless bound with -b.
    public let family: SocketAddress.Family

    /// Buffer size asked for: bursts of full-size packets must not be
    /// dropped while the single-threaded loop is busy with the tun side.
    public static let bufferBytes: Int32 = 4 << 20

    /// Wraps an fd received from the helper (the worker side); the family
    /// comes from the socket itself (SO_DOMAIN). Takes over closing `fd`,
    /// also when it throws.
    public init(adopting fd: FileDescriptor) throws(SystemError) {
        var domain: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd.rawValue, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0 else {
            let failure = Errno.current
            fd.close()
            throw .socketFailed(what: "the UDP socket from the helper", operation: "getsockopt SO_DOMAIN", errno: failure)
        }
        self.init(fd: fd, family: domain == AF_INET6 ? .ipv6 : .ipv4)
    }

    private init(fd: FileDescriptor, family: SocketAddress.Family) {
        self.owned = OwnedDescriptor(fd)
        self.family = family
    }

    /// A server client's own socket asks for less: it holds one client's
    /// datagrams, the main socket everyone's.
    public static let clientBufferBytes: Int32 = 1 << 20

    /// Opens and binds. `port` 0 picks a free port (tests). `sharedPort`
    /// (a server's socket): SO_REUSEPORT, so that the root helper can bind
    /// each client's own socket (`openClientSocket`) to the same address
    /// and port; only sockets made by the same user may join the port.
    public static func open(port: UInt16, bindAddress: String? = nil, sharedPort: Bool = false) throws(SystemError)
        -> UDPSocket {
        guard let bindAddress else {
            do throws(SystemError) {
                return try open(local: SocketAddress(ipv6: in6addr_any, port: port), dualStack: true, sharedPort: sharedPort)
            } catch .socketFailed(_, "socket", let errno) where errno.rawValue == EAFNOSUPPORT {
                // Kernel built without IPv6 or booted with ipv6.disable=1.
                return try open(local: SocketAddress(ipv4: in_addr(s_addr: INADDR_ANY), port: port), dualStack: false,
                                sharedPort: sharedPort)
            }
        }
        guard let local = SocketAddress.parse(literal: bindAddress, port: port) else {
            throw .badBindAddress(bindAddress)
        }
        return try open(local: local, dualStack: false, sharedPort: sharedPort)
    }

    /// What a server client's own socket copies from the main one: its
    /// bound address (as bound: `::` stays `::`), and whether it is dual-stack.
    public struct ClientSocketTemplate: Sendable {
        let local: SocketAddress
        let dualStack: Bool
    }

    /// The template of this (shared-port) socket, taken before its fd goes to the worker.
    public var clientSocketTemplate: ClientSocketTemplate {
        var address = SocketAddress()
        _ = address.withMutableSockaddr { getsockname(fd.rawValue, $0, $1) }
        return ClientSocketTemplate(local: address, dualStack: family == .ipv6 && peerFamily == nil)
    }

    /// A server client's own socket: bound to the main socket's address
    /// and port (SO_REUSEPORT) and connected to the client's address, so
    /// the kernel queues that address's datagrams here, in a buffer of
    /// their own, and everyone else's on the main socket: one client's
    /// flood fills its own buffer, not the others'.
    public static func openClientSocket(like template: ClientSocketTemplate, connectedTo peer: SocketAddress)
        throws(SystemError) -> UDPSocket {
        let socket = try open(local: template.local, dualStack: template.dualStack, sharedPort: true,
                              bufferBytes: clientBufferBytes)
        do throws(Errno) {
            try socket.connect(to: peer)
        } catch {
            throw .socketFailed(what: "a client's socket", operation: "connect to \(peer)", errno: error)
        }
        return socket
    }

    /// Connects the socket to `peer` (again): a server client's socket
    /// follows its client when it roams.
    public func connect(to peer: SocketAddress) throws(Errno) {
        let target = try sendAddress(for: peer)
        let result = target.withSockaddr { Glibc.connect(fd.rawValue, $0, $1) }
        if result != 0 { throw Errno.current }
    }

    private static func open(local: SocketAddress, dualStack: Bool, sharedPort: Bool,
                             bufferBytes: Int32 = UDPSocket.bufferBytes) throws(SystemError) -> UDPSocket {
        let family = local.family ?? .ipv4
        let af = family == .ipv6 ? AF_INET6 : AF_INET
        let raw = socket(af, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_UDP))
        guard raw >= 0 else { throw .socketFailed(what: "the UDP socket", operation: "socket", errno: .current) }
        let fd = FileDescriptor(rawValue: raw)
        do throws(SystemError) {
            if family == .ipv6 {
                // Explicit either way: the sysctl net.ipv6.bindv6only default must not decide.
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, dualStack ? 0 : 1, name: "IPV6_V6ONLY")
            }
            // Root may exceed net.core.rmem_max/wmem_max with the FORCE variants;
            // otherwise the kernel clamps. Both are best effort.
            if (try? setOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, bufferBytes, name: "")) == nil {
                _ = try? setOption(fd, SOL_SOCKET, SO_RCVBUF, bufferBytes, name: "")
            }
            if (try? setOption(fd, SOL_SOCKET, SO_SNDBUFFORCE, bufferBytes, name: "")) == nil {
                _ = try? setOption(fd, SOL_SOCKET, SO_SNDBUF, bufferBytes, name: "")
            }
            if sharedPort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, name: "SO_REUSEPORT") }
            // Coalesced receive (UDP GRO): best effort, the data path splits
            // what arrives coalesced and copes with what does not.
            _ = squtun_set_udp_gro(raw, 1)
            let result = local.withSockaddr { bind(raw, $0, $1) }
            if result != 0 {
                let code = Errno.current
                if code.rawValue == EADDRINUSE { throw .portInUse(port: local.port, errno: code) }
                throw .bindFailed(address: local.host, port: local.port, errno: code)
            }
        } catch {
            fd.close()
            throw error
        }
        return UDPSocket(fd: fd, family: family)
    }

    private static func setOption(_ fd: FileDescriptor, _ level: Int32, _ option: Int32, _ value: Int32, name: String) throws(SystemError) {
        var value = value
        if setsockopt(fd.rawValue, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            throw .socketFailed(what: "the UDP socket", operation: "setsockopt \(name)", errno: .current)
        }
    }

    /// The one family a peer must have for this socket to reach it: nil
    /// for a dual-stack socket (either), else the socket's own (an IPv6
    /// socket bound with -b is IPv6-only and cannot send to ::ffff:a.b.c.d).
    public var peerFamily: SocketAddress.Family? {
        guard family == .ipv6 else { return .ipv4 }
        var v6only: Int32 = 1
        var size = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd.rawValue, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, &size)
        return v6only == 0 ? nil : .ipv6
    }

    /// The bound address (getsockname), e.g. to learn the port after binding port 0.
    public var localAddress: SocketAddress {
        var address = SocketAddress()
        let ok = address.withMutableSockaddr { getsockname(fd.rawValue, $0, $1) } == 0
        return ok ? address.unmapped : SocketAddress()
    }

    /// Effective SO_RCVBUF (the kernel reports twice what was granted), for logs.
    public var receiveBufferBytes: Int {
        var value: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd.rawValue, SOL_SOCKET, SO_RCVBUF, &value, &size) == 0 ? Int(value) : 0
    }

    /// Sends one datagram. Returns false if the socket buffer is full (drop
    /// the packet). An IPv4 peer is sent to as `::ffff:a.b.c.d` on a
    /// dual-stack socket. No allocation.
    @inline(__always)
    public func send(_ buffer: UnsafeRawPointer, count: Int, to peer: SocketAddress) throws(Errno) -> Bool {
        let target = try sendAddress(for: peer)
        do throws(Errno) {
            _ = try target.withSockaddr { (sa, len) throws(Errno) -> Int in
                try retryingEINTR { sendto(fd.rawValue, buffer, count, Int32(MSG_DONTWAIT), sa, len) }
            }
            return true
        } catch let failure where failure.isWouldBlock || failure.rawValue == ENOBUFS {
            return false
        }
    }

    /// The form of `peer` this socket can send to: `::ffff:a.b.c.d` for an
    /// IPv4 peer on a dual-stack socket.
    @inline(__always)
    public func sendAddress(for peer: SocketAddress) throws(Errno) -> SocketAddress {
        switch (family, peer.family) {
        case (.ipv6, .ipv4): return peer.mappedToIPv6
        case (.ipv4, .ipv6) where peer.isMappedIPv4: return peer.unmapped
        case (.ipv4, .ipv6): throw Errno(EAFNOSUPPORT)
        default: return peer
        }
    }

    @inline(__always)
    public func send(_ bytes: UnsafeRawBufferPointer, to peer: SocketAddress) throws(Errno) -> Bool {
        try send(bytes.baseAddress!, count: bytes.count, to: peer)
    }

    /// Receives one datagram into `buffer`. Nil when nothing is waiting. The
    /// sender comes back unmapped (plain IPv4 for IPv4 peers). A datagram
    /// longer than the buffer is cut; the count returned is what fits.
    @inline(__always)
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> (count: Int, from: SocketAddress)? {
        var from = SocketAddress()
        do throws(Errno) {
            let n = try from.withMutableSockaddr { (sa, len) throws(Errno) -> Int in
                try retryingEINTR { recvfrom(fd.rawValue, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), sa, len) }
            }
            return (n, from.unmapped)
        } catch let failure where failure.isWouldBlock {
            return nil
        }
    }

    public consuming func close() { owned.close() }

    /// Ends ownership without closing: the fd, still open, is the caller's
    /// to close (after sending it to the process that takes it over).
    public consuming func release() -> FileDescriptor { owned.release() }
}
