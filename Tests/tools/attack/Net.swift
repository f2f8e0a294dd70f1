import SqutunDataPath
import CShim
import Glibc

/// An IPv4 address and port (host byte order).
struct Endpoint: Equatable {
    var address: UInt32
    var port: UInt16

    /// "a.b.c.d:port".
    init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"),
              let port = UInt16(text[text.index(after: colon)...]),
              let a = Self.parseAddress(String(text[..<colon])) else { return nil }
        address = a
        self.port = port
    }

    init(address: UInt32, port: UInt16) {
        self.address = address
        self.port = port
    }

    static func parseAddress(_ s: String) -> UInt32? {
        var a = in_addr()
        guard inet_pton(AF_INET, s, &a) == 1 else { return nil }
        return UInt32(bigEndian: a.s_addr)
    }

    var sockaddr: sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr = in_addr(s_addr: address.bigEndian)
        return sa
    }

    var description: String {
        "\(address >> 24).\(address >> 16 & 255).\(address >> 8 & 255).\(address & 255):\(port)"
    }
}

extension UnsafeMutableRawPointer {
    @inline(__always) func put16(_ v: UInt16, _ at: Int) { storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt16.self) }
    @inline(__always) func put32(_ v: UInt32, _ at: Int) { storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt32.self) }
    @inline(__always) func put64(_ v: UInt64, _ at: Int) { storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt64.self) }
}

extension UnsafeRawPointer {
    @inline(__always) func get16(_ at: Int) -> UInt16 { UInt16(bigEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    @inline(__always) func get32(_ at: Int) -> UInt32 { UInt32(bigEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    @inline(__always) func get64(_ at: Int) -> UInt64 { UInt64(bigEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}

/// Sends UDP datagrams with any source address and port: a raw IPv4 socket
/// (IPPROTO_RAW, so IP_HDRINCL) writing the IP and UDP headers itself, with
/// a correct UDP checksum, and fragmenting datagrams that do not fit the
/// link MTU (the kernel refuses oversized header-included packets).
/// This is how the suite sends "from the peer's address".
final class RawSender {
    let fd: Int32
    let source: Endpoint
    let destination: Endpoint
    let mtu: Int
    private var ipID: UInt16
    private let buffer: UnsafeMutableRawPointer
    private let fragment: UnsafeMutableRawPointer
    private var target: sockaddr_in
    private(set) var sent = 0
    private(set) var errors = 0

    static let capacity = 65536 + 64

    init(from source: Endpoint, to destination: Endpoint, mtu: Int = 1500) throws(AttackError) {
        let s = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        guard s >= 0 else { throw .system("raw socket: \(errnoText()) (needs root / CAP_NET_RAW)") }
        var big: Int32 = 4 << 20
        _ = setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, socklen_t(MemoryLayout<Int32>.size))
        fd = s
        self.source = source
        self.destination = destination
        self.mtu = mtu
        ipID = UInt16(truncatingIfNeeded: getpid())
        buffer = .allocate(byteCount: Self.capacity, alignment: 16)
        fragment = .allocate(byteCount: 2048, alignment: 16)
        target = destination.sockaddr
        target.sin_port = 0
    }

    deinit {
        close(fd)
        buffer.deallocate()
        fragment.deallocate()
    }

    /// Sends one UDP datagram carrying `payload`; false if the kernel refused it.
    @discardableResult
    func send(_ payload: UnsafeRawBufferPointer) -> Bool {
        let udpLength = 8 + payload.count
        guard udpLength <= 65535 - 20 else { errors += 1; return false }
        let udp = buffer + 20
        udp.put16(source.port, 0)
        udp.put16(destination.port, 2)
        udp.put16(UInt16(udpLength), 4)
        udp.put16(0, 6)
        if payload.count > 0 { (udp + 8).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        // Pseudo-header: source, destination, zero, protocol 17, UDP length.
        // The datagram's sum is folded first: added to a full accumulator,
        // the small words could overflow it.
        let sum = UInt64(Checksum.fold(Checksum.add(0, udp, udpLength)))
            + Checksum.word(UInt16(source.address >> 16)) + Checksum.word(UInt16(source.address & 0xffff))
            + Checksum.word(UInt16(destination.address >> 16)) + Checksum.word(UInt16(destination.address & 0xffff))
            + Checksum.word(17) + Checksum.word(UInt16(udpLength))
        var csum = ~Checksum.fold(sum)  // in memory order
        if csum == 0 { csum = 0xffff }
        udp.storeBytes(of: csum, toByteOffset: 6, as: UInt16.self)

        ipID &+= 1
        let ok: Bool
        if 20 + udpLength <= mtu {
            writeIPHeader(buffer, payloadLength: udpLength, fragmentField: 0x4000)  // DF
            ok = transmit(buffer, 20 + udpLength)
        } else {
            // Fragments of (mtu - 20) rounded down to 8 bytes, MF on all but the last.
            let step = (mtu - 20) & ~7
            var offset = 0
            var good = true
            while offset < udpLength {
                let chunk = min(step, udpLength - offset)
                let more = offset + chunk < udpLength
                (fragment + 20).copyMemory(from: udp + offset, byteCount: chunk)
                writeIPHeader(fragment, payloadLength: chunk,
                              fragmentField: UInt16(offset / 8) | (more ? 0x2000 : 0))
                if !transmit(fragment, 20 + chunk) { good = false }
                offset += chunk
            }
            ok = good
        }
        if ok { sent += 1 } else { errors += 1 }
        return ok
    }

    private func writeIPHeader(_ p: UnsafeMutableRawPointer, payloadLength: Int, fragmentField: UInt16) {
        p.storeBytes(of: UInt8(0x45), toByteOffset: 0, as: UInt8.self)
        p.storeBytes(of: UInt8(0), toByteOffset: 1, as: UInt8.self)
        p.put16(UInt16(20 + payloadLength), 2)
        p.put16(ipID, 4)
        p.put16(fragmentField, 6)
        p.storeBytes(of: UInt8(64), toByteOffset: 8, as: UInt8.self)
        p.storeBytes(of: UInt8(17), toByteOffset: 9, as: UInt8.self)
        p.put16(0, 10)
        p.put32(source.address, 12)
        p.put32(destination.address, 16)
        Checksum.setIPv4Header(p, headerLength: 20)
    }

    private func transmit(_ p: UnsafeMutableRawPointer, _ count: Int) -> Bool {
        while true {
            let n = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, p, count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if n == count { return true }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == ENOBUFS || errno == EAGAIN) {
                // The local queue is full: wait a little and try again (bounded by the caller's pacing).
                sleepSeconds(0.0005)
                continue
            }
            return false
        }
    }
}

/// An ordinary connected UDP socket (the kernel picks the source): the
/// cheapest way to push a flood.
final class PlainSender {
    let fd: Int32
    fileprivate(set) var sent = 0
    fileprivate(set) var refused = 0

    init(to destination: Endpoint, from source: Endpoint? = nil) throws(AttackError) {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw .system("UDP socket: \(errnoText())") }
        fd = s
        var big: Int32 = 4 << 20
        _ = setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, socklen_t(MemoryLayout<Int32>.size))
        if let source {
            var sa = source.sockaddr
            let r = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard r == 0 else { throw .system("bind \(source.description): \(errnoText())") }
        }
        var sa = destination.sockaddr
        let r = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { throw .system("connect \(destination.description): \(errnoText())") }
    }

    deinit { close(fd) }

    /// One datagram; ICMP errors from earlier datagrams (ECONNREFUSED) are ignored.
    @inline(__always)
    func send(_ p: UnsafeRawPointer, _ count: Int) {
        while true {
            let n = Glibc.send(fd, p, count, 0)
            if n >= 0 { sent += 1; return }
            if errno == EINTR || errno == ECONNREFUSED { continue }
            if errno == ENOBUFS || errno == EAGAIN { sleepSeconds(0.0002); continue }
            refused += 1
            return
        }
    }
}

extension PlainSender {
    /// Datagrams `first ..< first + n` of a pool (datagram i is `lengths[i]`
    /// bytes at `base + i * slot`) in sendmmsg calls of up to 64; waits
    /// briefly whenever the socket buffer is full, so every one is sent.
    func sendBatch(_ base: UnsafeRawPointer, slot: Int, first: Int, count n: Int,
                   lengths: UnsafePointer<UInt32>, to destination: Endpoint) {
        var sa = destination.sockaddr
        var done = 0
        while done < n {
            let k = first + done
            let r = withUnsafePointer(to: &sa) {
                squtun_send_batch(fd, base + k * slot, slot, UInt32(min(n - done, Int(SQUTUN_BATCH_MAX))),
                                  lengths + k, $0, UInt32(MemoryLayout<sockaddr_in>.size))
            }
            if r > 0 { done += Int(r); sent += Int(r); continue }
            if r < 0 && (errno == EINTR || errno == ECONNREFUSED) { continue }
            if r == 0 || errno == ENOBUFS || errno == EAGAIN { sleepSeconds(0.0002); continue }
            refused += n - done
            return
        }
    }
}

/// An AF_PACKET socket on one interface, all protocols, link header removed
/// (SOCK_DGRAM): sees every IP packet the interface receives or sends, with
/// the kernel's packet type (PACKET_OUTGOING = 4 for sent ones).
/// With `vnetHeader` (an Ethernet interface) every packet comes with its
/// Ethernet header (SOCK_RAW: the kernel allows PACKET_VNET_HDR on no other
/// kind) after a struct virtio_net_hdr (`VnetHeader`): how a GSO
/// super-packet is to be cut.
final class PacketSocket {
    let fd: Int32
    let ifindex: Int32
    static let packetOutgoing: UInt8 = 4

    /// `linkLayer`: SOCK_RAW, each packet with its link-layer header (a TAP
    /// device's 14-byte Ethernet header); else SOCK_DGRAM, which strips it.
    /// `incomingOnly`: PACKET_IGNORE_OUTGOING, so what the kernel sends out
    /// never takes room in the receive buffer (without offloads, a TAP
    /// device's outgoing bulk traffic is one frame per packet and filled
    /// it, so incoming ones were dropped); best effort (Linux 4.20+).
    init(interface: String, vnetHeader: Bool = false, linkLayer: Bool = false,
         incomingOnly: Bool = false) throws(AttackError) {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw .system("no interface \(interface): \(errnoText())") }
        ifindex = Int32(index)
        let ethPAll = UInt16(0x0003)
        let kind = vnetHeader || linkLayer ? Int32(SOCK_RAW.rawValue) : Int32(SOCK_DGRAM.rawValue)
        let s = socket(17 /* AF_PACKET */, kind | Int32(SOCK_CLOEXEC.rawValue),
                       Int32(ethPAll.bigEndian))
        guard s >= 0 else { throw .system("AF_PACKET socket: \(errnoText())") }
        fd = s
        // A tun with offloads carries super-packets of up to 64 KiB each,
        // every one charged in full to this buffer: 16 MiB held ~250 of
        // them, and a witness descheduled for a moment during a 3 Gbit/s
        // iperf3 (release builds) dropped some. 256 MiB holds seconds of
        // backlog; only what is queued uses memory.
        var big: Int32 = 256 << 20
        _ = setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, socklen_t(MemoryLayout<Int32>.size))
        if incomingOnly {
            var one: Int32 = 1
            _ = setsockopt(s, 263 /* SOL_PACKET */, 23 /* PACKET_IGNORE_OUTGOING */, &one,
                           socklen_t(MemoryLayout<Int32>.size))
        }
        if vnetHeader {
            var one: Int32 = 1
            guard setsockopt(s, 263 /* SOL_PACKET */, 15 /* PACKET_VNET_HDR */, &one,
                             socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                let why = errnoText()
                close(s)
                throw .system("PACKET_VNET_HDR on \(interface): \(why)")
            }
        }
        // struct sockaddr_ll: family u16, protocol be16, ifindex i32, hatype u16,
        // pkttype u8, halen u8, addr[8] = 20 bytes.
        var ll = [UInt8](repeating: 0, count: 20)
        ll.withUnsafeMutableBytes { b in
            b.storeBytes(of: UInt16(17), toByteOffset: 0, as: UInt16.self)
            b.storeBytes(of: ethPAll.bigEndian, toByteOffset: 2, as: UInt16.self)
            b.storeBytes(of: Int32(index), toByteOffset: 4, as: Int32.self)
        }
        let r = ll.withUnsafeBytes { b in
            bind(s, b.baseAddress!.assumingMemoryBound(to: sockaddr.self), 20)
        }
        guard r == 0 else { throw .system("bind AF_PACKET to \(interface): \(errnoText())") }
    }

    deinit { close(fd) }

    enum Received {
        case packet(length: Int, packetType: UInt8)
        case timeout
        case gone(String)
    }

    /// Waits up to `timeoutMs` for one packet.
    func receive(into buffer: UnsafeMutableRawBufferPointer, timeoutMs: Int32) -> Received {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, timeoutMs)
        if n == 0 || (n < 0 && errno == EINTR) { return .timeout }
        if n < 0 { return .gone("poll: \(errnoText())") }
        if p.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 && p.revents & Int16(POLLIN) == 0 {
            return .gone("interface error")
        }
        var ll = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var len = socklen_t(32)
        let got = withUnsafeMutablePointer(to: &ll) { llp in
            llp.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0, &len)
            }
        }
        if got < 0 {
            if errno == EAGAIN || errno == EINTR { return .timeout }
            return .gone("recvfrom: \(errnoText())")
        }
        let type = withUnsafeBytes(of: &ll) { $0[10] }
        return .packet(length: got, packetType: type)
    }

    /// PACKET_STATISTICS: packets the socket had to drop since the last call.
    func drops() -> UInt32 {
        var st = (UInt32(0), UInt32(0))  // tp_packets, tp_drops
        var len = socklen_t(8)
        guard getsockopt(fd, 263 /* SOL_PACKET */, 6 /* PACKET_STATISTICS */, &st, &len) == 0 else { return 0 }
        return st.1
    }
}

/// struct virtio_net_hdr (10 bytes, host order) in front of each frame of
/// a PacketSocket with `vnetHeader`; `ipOffset` skips it and the Ethernet
/// header after it. A sender's UDP GSO run (one skb whose
/// UDP length covers every segment) crosses a veth pair whole: its UDP
/// payload is `gsoSize`-byte datagrams back to back, the last one shorter.
struct VnetHeader {
    static let length = 10
    static let ipOffset = length + 14
    static let gsoNone: UInt8 = 0
    static let gsoUDPL4: UInt8 = 5
    var gsoType: UInt8
    var gsoSize: Int

    /// nil unless an IPv4 frame follows.
    init?(_ p: UnsafeRawBufferPointer) {
        guard p.count >= Self.ipOffset, p[Self.length + 12] == 0x08, p[Self.length + 13] == 0x00 else { return nil }
        gsoType = p[1] & 0x7f  // without VIRTIO_NET_HDR_GSO_ECN
        gsoSize = Int(p[4]) | Int(p[5]) << 8
    }
}

/// The UDP datagram inside an IPv4 packet (no fragments).
struct UDPView {
    var source: Endpoint
    var destination: Endpoint
    var payloadOffset: Int
    var payloadLength: Int

    init?(_ p: UnsafeRawBufferPointer) {
        guard p.count >= 28, let b = p.baseAddress, p[0] >> 4 == 4, p[9] == 17 else { return nil }
        let ihl = Int(p[0] & 0x0f) * 4
        guard ihl >= 20, p.count >= ihl + 8 else { return nil }
        let frag = b.get16(6)
        guard frag & 0x3fff == 0 else { return nil }  // MF or an offset: a fragment
        source = Endpoint(address: b.get32(12), port: b.get16(ihl))
        destination = Endpoint(address: b.get32(16), port: b.get16(ihl + 2))
        let udpLength = Int(b.get16(ihl + 4))
        guard udpLength >= 8, ihl + udpLength <= p.count else { return nil }
        payloadOffset = ihl + 8
        payloadLength = udpLength - 8
    }
}
