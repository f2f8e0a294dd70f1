import Shared
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 UDP endpoint: a `sockaddr_storage` plus its length, so it
/// can go straight to sendto/recvfrom with no conversion and no allocation.
///
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
/// reports for IPv4 peers) equals, hashes and prints like the plain IPv4
/// address, so roaming checks and logs see one form whichever socket
/// delivered the packet. `UDPSocket` maps back when sending.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Family: Sendable { case ipv4, ipv6 }

    public private(set) var storage = sockaddr_storage()
    public private(set) var length: socklen_t = 0

    /// No address (family AF_UNSPEC); `receive` fills one in.
    public init() {}

    public init(ipv4 address: in_addr, port: UInt16) {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr = address
        withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: sin) { dst.copyMemory(from: $0) } }
        length = socklen_t(MemoryLayout<sockaddr_in>.size)
    }

    public init(ipv6 address: in6_addr, port: UInt16, scopeID: UInt32 = 0) {
        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        sin6.sin6_port = port.bigEndian
        sin6.sin6_addr = address
        sin6.sin6_scope_id = scopeID
        withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: sin6) { dst.copyMemory(from: $0) } }
        length = socklen_t(MemoryLayout<sockaddr_in6>.size)
    }

    /// Copies a kernel or getaddrinfo sockaddr. Nil unless it is a complete
    /// AF_INET or AF_INET6 address.
    public init?(copying pointer: UnsafeRawPointer, length: socklen_t) {
        guard length >= MemoryLayout<sa_family_t>.size,
              Int(length) <= MemoryLayout<sockaddr_storage>.size else { return nil }
        let family = Int32(pointer.loadUnaligned(as: sa_family_t.self))
        switch family {
        case AF_INET where length >= socklen_t(MemoryLayout<sockaddr_in>.size): break
        case AF_INET6 where length >= socklen_t(MemoryLayout<sockaddr_in6>.size): break
        default: return nil
        }
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: Int(length))) }
        self.length = length
    }

    // MARK: Parts

    public var family: Family? {
        switch Int32(storage.ss_family) {
        case AF_INET: return .ipv4
        case AF_INET6: return .ipv6
        default: return nil
        }
    }

    /// The port in host byte order (both sockaddr_in and sockaddr_in6 keep
    /// it at offset 2).
    public var port: UInt16 {
        withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
    }

    public var scopeID: UInt32 {
        guard family == .ipv6 else { return 0 }
        return withUnsafeBytes(of: storage) { $0.loadUnaligned(fromByteOffset: 24, as: UInt32.self) }
    }

    /// True for `::ffff:a.b.c.d`.
    public var isMappedIPv4: Bool {
        guard family == .ipv6 else { return false }
        return withUnsafeBytes(of: storage) { raw in
            for i in 8..<18 where raw[i] != 0 { return false }
            return raw[18] == 0xff && raw[19] == 0xff
        }
    }

    /// The plain IPv4 form of a mapped address; other addresses unchanged.
    public var unmapped: SocketAddress {
        guard isMappedIPv4 else { return self }
        var v4 = in_addr()
        withUnsafeBytes(of: storage) { raw in
            withUnsafeMutableBytes(of: &v4) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[20..<24])) }
        }
        return SocketAddress(ipv4: v4, port: port)
    }

    /// The `::ffff:a.b.c.d` form of an IPv4 address, which is how an
    /// AF_INET6 dual-stack socket must be told to send to an IPv4 peer.
    public var mappedToIPv6: SocketAddress {
        guard family == .ipv4 else { return self }
        var v6 = in6_addr()
        withUnsafeMutableBytes(of: &v6) { dst in
            dst[10] = 0xff
            dst[11] = 0xff
            withUnsafeBytes(of: storage) { dst[12] = $0[4]; dst[13] = $0[5]; dst[14] = $0[6]; dst[15] = $0[7] }
        }
        return SocketAddress(ipv6: v6, port: port)
    }

    /// Calls `body` with the sockaddr pointer and length for sendto/bind.
    @inline(__always)
    public func withSockaddr<R, E: Error>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R) throws(E) -> R {
        var copy = storage
        return try withUnsafePointer(to: &copy) { pointer throws(E) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(E) -> R in try body(sa, length) }
        }
    }

    /// Lets recvfrom/getsockname write the address in place.
    @inline(__always)
    public mutating func withMutableSockaddr<R, E: Error>(
        _ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) throws(E) -> R
    ) throws(E) -> R {
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        defer { length = size }
        return try withUnsafeMutablePointer(to: &storage) { pointer throws(E) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(E) -> R in try body(sa, &size) }
        }
    }

    // MARK: Equality and hashing (on the unmapped form)

    /// 4 or 6, the 16 address bytes (IPv4 in the first 4), port, scope.
    private var canonical: (UInt8, (UInt64, UInt64), UInt16, UInt32) {
        let plain = isMappedIPv4 ? unmapped : self
        return withUnsafeBytes(of: plain.storage) { raw in
            switch plain.family {
            case .ipv4:
                let a = UInt64(raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                return (4, (a, 0), plain.port, 0)
            case .ipv6:
                let hi = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
                let lo = raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
                return (6, (hi, lo), plain.port, plain.scopeID)
            case nil:
                return (0, (0, 0), 0, 0)
            }
        }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        let x = a.canonical, y = b.canonical
        return x.0 == y.0 && x.1.0 == y.1.0 && x.1.1 == y.1.1 && x.2 == y.2 && x.3 == y.3
    }

    public func hash(into hasher: inout Hasher) {
        let c = canonical
        hasher.combine(c.0)
        hasher.combine(c.1.0)
        hasher.combine(c.1.1)
        hasher.combine(c.2)
        hasher.combine(c.3)
    }

    // MARK: Text

    /// `198.51.100.2:3456`, `[2001:db8::1]:3456`, `[fe80::1%2]:3456`.
    /// inet_ntop makes no system call, so this is safe under seccomp.
    public var description: String {
        switch unmapped.family {
        case .ipv4: return "\(host):\(port)"
        case .ipv6: return "[\(host)]:\(port)"
        case nil: return "(no address)"
        }
    }

    /// The address alone, without port or brackets.
    public var host: String {
        let plain = unmapped
        guard let family = plain.family else { return "(no address)" }
        var text = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { out -> String in
            withUnsafeBytes(of: plain.storage) { raw in
                let af = family == .ipv4 ? AF_INET : AF_INET6
                let offset = family == .ipv4 ? 4 : 8
                guard inet_ntop(af, raw.baseAddress! + offset, out.baseAddress!, 64) != nil else { return "?" }
                return String(cString: out.baseAddress!)
            }
        }
        if plain.scopeID != 0 { text += "%\(plain.scopeID)" }
        return text
    }

    // MARK: Parsing and resolving

    /// A numeric address: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`,
    /// `fe80::1%eth0` or `fe80::1%2`. Mapped IPv6 comes back as IPv4. Nil if
    /// `literal` is not numeric (no DNS here).
    public static func parse(literal: String, port: UInt16) -> SocketAddress? {
        var text = Substring(literal)
        if text.hasPrefix("[") && text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        var scope: UInt32 = 0
        if let percent = text.firstIndex(of: "%") {
            let name = text[text.index(after: percent)...]
            guard !name.isEmpty else { return nil }
            if let number = UInt32(name) {
                scope = number
            } else {
                scope = if_nametoindex(String(name))
                guard scope != 0 else { return nil }
            }
            text = text[..<percent]
        }
        var v4 = in_addr()
        if scope == 0, inet_pton(AF_INET, String(text), &v4) == 1 {
            return SocketAddress(ipv4: v4, port: port)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(text), &v6) == 1 {
            return SocketAddress(ipv6: v6, port: port, scopeID: scope).unmapped
        }
        return nil
    }

    /// A peer name or address via getaddrinfo (first usable answer).
    /// `family` limits the answers to what the UDP socket can reach (see
    /// `UDPSocket.peerFamily`): a peer with addresses of the other family
    /// only is refused here, with a line saying so (`bindAddress`, -b, goes
    /// into it), rather than accepted to fail every send later. Runs in the
    /// helper, before the chroot: it needs /etc/resolv.conf, nsswitch and
    /// the network.
    public static func resolve(host: String, port: UInt16, family: Family? = nil,
                        bindAddress: String? = nil) throws(SystemError) -> SocketAddress {
        var name = Substring(host)
        if name.hasPrefix("[") && name.hasSuffix("]") { name = name.dropFirst().dropLast() }
        if let literal = parse(literal: String(name), port: port) {
            if let family, literal.family != family {
                throw .peerFamilyMismatch(host: host, family: family, bindAddress: bindAddress)
            }
            return literal
        }
        let (found, code) = lookUp(String(name), port: port, family: family)
        if let found { return found }
        // Does the name exist, only not in this family (glibc says so with
        // EAI_NODATA, EAI_ADDRFAMILY or EAI_NONAME, depending on where the
        // name is found)? Then say that. Not after a failure of the lookup
        // itself (a timeout: asking again would double the wait).
        let lookupFailed = code == EAI_AGAIN || code == EAI_FAIL || code == EAI_SYSTEM || code == EAI_MEMORY
        if let family, !lookupFailed, lookUp(String(name), port: port, family: nil).0 != nil {
            throw .peerFamilyMismatch(host: host, family: family, bindAddress: bindAddress)
        }
        let reason = code == 0 ? "no usable address"
            : code == EAI_SYSTEM ? Errno.current.description : String(cString: gai_strerror(code))
        throw .resolveFailed(host: host, reason: reason)
    }

    /// The first answer of `family` (any if nil), or the getaddrinfo error
    /// code (0: answers, none usable).
    private static func lookUp(_ name: String, port: UInt16, family: Family?) -> (SocketAddress?, Int32) {
        var hints = addrinfo()
        hints.ai_family = family == .ipv4 ? AF_INET : family == .ipv6 ? AF_INET6 : AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_UDP)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(name, String(port), &hints, &list)
        guard code == 0 else { return (nil, code) }
        defer { freeaddrinfo(list) }
        var entry = list
        while let info = entry {
            if let address = info.pointee.ai_addr,
               let found = SocketAddress(copying: address, length: info.pointee.ai_addrlen)?.unmapped,
               family == nil || found.family == family {
                return (found, 0)
            }
            entry = info.pointee.ai_next
        }
        return (nil, 0)
    }
}
