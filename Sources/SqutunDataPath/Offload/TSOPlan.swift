import Shared
import SqutunSystem
/// Splitting what a tun with TSO/USO hands us. With TUN_F_TSO4/TSO6 the
/// kernel gives the reader one TCP super-packet of up to 64 KiB where it
/// would have given ~45 MTU-sized packets: one read instead of 45 (and
/// with TUN_F_USO4/6 the same for a UDP_SEGMENT sender's datagrams).
/// squtun cuts it back into the packets the kernel would have sent, each
/// with its own complete IP and transport checksums, and seals each as an
/// ordinary datagram: the wire format, and every check the peer makes, are
/// unchanged.
///
/// Segment k (as Linux's tcp_gso_segment / __udp_gso_segment do it): the
/// first packet's headers, payload bytes [k·size, (k+1)·size), IPv4 id + k,
/// lengths and checksums recomputed; for TCP the sequence number + k·size,
/// FIN and PSH only on the last segment, CWR only on the first.
public struct TSOPlan {
    public let ipv6: Bool
    public let udp: Bool
    /// Bytes of IP header (the kernel's csum_start): TCP starts here.
    public let ipHeaderLength: Int
    /// IP + TCP headers, copied in front of every segment.
    public let headerLength: Int
    public let segmentSize: Int
    public let payloadLength: Int
    public let count: Int
    private let firstSequence: UInt32
    private let firstID: UInt16

    /// Nil when the packet is not the super-packet the header says it is
    /// (the kernel's hdr_len is not trusted: it can be the whole first
    /// packet; the TCP header length comes from the packet itself).
    public init?(packet p: UnsafeRawBufferPointer, header h: VirtioNetHeader, maxSegment: Int) {
        guard p.count >= 20, let base = p.baseAddress else { return nil }
        let version = p[0] >> 4
        let l4 = Int(h.checksumStart)
        let proto: UInt8
        switch h.gsoType & ~VirtioNetHeader.gsoECN {
        case VirtioNetHeader.gsoTCPv4: (proto, ipv6) = (SegmentView.tcp, false)
        case VirtioNetHeader.gsoTCPv6: (proto, ipv6) = (SegmentView.tcp, true)
        case VirtioNetHeader.gsoUDPL4: (proto, ipv6) = (SegmentView.udp, version == 6)
        default: return nil
        }
        udp = proto == SegmentView.udp
        if ipv6 {
            // Extension headers would need walking; Linux's GSO output for
            // a local socket has none, and anything else is refused.
            guard version == 6, l4 == 40, p.count >= 40, p[6] == proto else { return nil }
        } else {
            guard version == 4, Int(p[0] & 0x0f) * 4 == l4, l4 >= 20, p[9] == proto else { return nil }
        }
        guard h.flags & VirtioNetHeader.needsChecksum != 0, h.checksumOffset == (udp ? 6 : 16),
              p.count >= l4 + (udp ? 8 : 20) else { return nil }
        let transportLength = udp ? 8 : Int(p[l4 + 12] >> 4) * 4
        guard transportLength >= (udp ? 8 : 20), p.count >= l4 + transportLength else { return nil }
        ipHeaderLength = l4
        headerLength = l4 + transportLength
        segmentSize = Int(h.gsoSize)
        payloadLength = p.count - headerLength
        guard segmentSize > 0, payloadLength > 0, headerLength + segmentSize <= maxSegment else { return nil }
        count = (payloadLength + segmentSize - 1) / segmentSize
        firstSequence = udp ? 0 : UInt32(bigEndian: base.loadUnaligned(fromByteOffset: l4 + 4, as: UInt32.self))
        firstID = ipv6 ? 0 : UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
    }

    /// Writes segment `k` of `packet` to `out` (room for headerLength +
    /// segmentSize bytes); returns its length.
    public func write(segment k: Int, of packet: UnsafeRawBufferPointer, to out: UnsafeMutableRawPointer) -> Int {
        let src = packet.baseAddress!
        let offset = k * segmentSize
        let chunk = min(segmentSize, payloadLength - offset)
        let total = headerLength + chunk
        out.copyMemory(from: src, byteCount: headerLength)
        (out + headerLength).copyMemory(from: src + headerLength + offset, byteCount: chunk)

        if ipv6 {
            out.storeBytes(of: UInt16(total - 40).bigEndian, toByteOffset: 4, as: UInt16.self)
        } else {
            out.storeBytes(of: UInt16(total).bigEndian, toByteOffset: 2, as: UInt16.self)
            out.storeBytes(of: (firstID &+ UInt16(truncatingIfNeeded: k)).bigEndian, toByteOffset: 4, as: UInt16.self)
            Checksum.setIPv4Header(out, headerLength: ipHeaderLength)
        }
        let transport = out + ipHeaderLength
        let transportLength = total - ipHeaderLength
        let checksumAt: Int
        if udp {
            transport.storeBytes(of: UInt16(transportLength).bigEndian, toByteOffset: 4, as: UInt16.self)
            checksumAt = 6
        } else {
            transport.storeBytes(of: (firstSequence &+ UInt32(truncatingIfNeeded: offset)).bigEndian,
                                 toByteOffset: 4, as: UInt32.self)
            var flags = transport.load(fromByteOffset: 13, as: UInt8.self)
            if k != count - 1 { flags &= ~(SegmentView.flagFIN | SegmentView.flagPSH) }
            if k != 0 { flags &= ~SegmentView.flagCWR }
            transport.storeBytes(of: flags, toByteOffset: 13, as: UInt8.self)
            checksumAt = 16
        }
        transport.storeBytes(of: 0, toByteOffset: checksumAt, as: UInt16.self)
        let proto = udp ? SegmentView.udp : SegmentView.tcp
        let sum = ~Checksum.fold(Checksum.add(
            Checksum.pseudoHeader(ip: out, ipv6: ipv6, protocol: proto, length: transportLength),
            transport, transportLength))
        // UDP spells a zero checksum 0xffff (0 means none); for TCP both are the same value.
        transport.storeBytes(of: sum == 0 && udp ? 0xffff : sum, toByteOffset: checksumAt, as: UInt16.self)
        return total
    }

    /// Finishes a packet the kernel left with NEEDS_CSUM (CHECKSUM_PARTIAL):
    /// the field at start+offset holds the pseudo-header sum; the sum from
    /// `start` to the end, complemented, goes there. False if the header's
    /// offsets do not fit the packet. A zero result is stored as 0xffff, as
    /// the kernel's skb_checksum_help does (the same value in ones'
    /// complement, and the only valid spelling for UDP).
    public static func completeChecksum(_ p: UnsafeMutableRawBufferPointer, header h: VirtioNetHeader) -> Bool {
        let start = Int(h.checksumStart)
        let field = start + Int(h.checksumOffset)
        guard let base = p.baseAddress, field + 2 <= p.count else { return false }
        let sum = ~Checksum.fold(Checksum.add(0, base + start, p.count - start))
        base.storeBytes(of: sum == 0 ? 0xffff : sum, toByteOffset: field, as: UInt16.self)
        return true
    }
}
