/// Splitting what a tun with TSO hands us. With TUN_F_TSO4/TSO6 the kernel
/// gives the reader one TCP super-packet of up to 64 KiB where it would
/// have given ~45 MTU-sized packets: one read instead of 45. squtun cuts it
/// back into the segments the kernel would have sent, each with its own
/// complete IP and TCP checksums, and seals each as an ordinary datagram:
/// the wire format, and every check the peer makes, are unchanged.
///
/// Segment k (RFC 793 sequence space, as Linux's tcp_gso_segment does it):
/// the first packet's headers, payload bytes [k·size, (k+1)·size), sequence
/// number + k·size, IPv4 id + k, FIN and PSH only on the last segment, CWR
/// only on the first; lengths and checksums recomputed.
struct TSOPlan {
    let ipv6: Bool
    /// Bytes of IP header (the kernel's csum_start): TCP starts here.
    let ipHeaderLength: Int
    /// IP + TCP headers, copied in front of every segment.
    let headerLength: Int
    let segmentSize: Int
    let payloadLength: Int
    let count: Int
    private let firstSequence: UInt32
    private let firstID: UInt16

    static let tcp: UInt8 = 6
    static let flagFIN: UInt8 = 0x01
    static let flagPSH: UInt8 = 0x08
    static let flagCWR: UInt8 = 0x80

    /// Nil when the packet is not the TCP super-packet the header says it is
    /// (the kernel's hdr_len is not trusted: it can be the whole first
    /// packet; the TCP header length comes from the packet itself).
    init?(packet p: UnsafeRawBufferPointer, header h: VirtioNetHeader, maxSegment: Int) {
        guard p.count >= 20, let base = p.baseAddress else { return nil }
        let version = p[0] >> 4
        let l4 = Int(h.checksumStart)
        switch h.gsoType & ~VirtioNetHeader.gsoECN {
        case VirtioNetHeader.gsoTCPv4:
            guard version == 4, Int(p[0] & 0x0f) * 4 == l4, l4 >= 20, p[9] == Self.tcp else { return nil }
            ipv6 = false
        case VirtioNetHeader.gsoTCPv6:
            // Extension headers would need walking; Linux's TSO6 output for
            // a local socket has none, and anything else is refused.
            guard version == 6, l4 == 40, p.count >= 40, p[6] == Self.tcp else { return nil }
            ipv6 = true
        default:
            return nil
        }
        guard h.flags & VirtioNetHeader.needsChecksum != 0, h.checksumOffset == 16,
              p.count >= l4 + 20 else { return nil }
        let tcpLength = Int(p[l4 + 12] >> 4) * 4
        guard tcpLength >= 20, p.count >= l4 + tcpLength else { return nil }
        ipHeaderLength = l4
        headerLength = l4 + tcpLength
        segmentSize = Int(h.gsoSize)
        payloadLength = p.count - headerLength
        guard segmentSize > 0, payloadLength > 0, headerLength + segmentSize <= maxSegment else { return nil }
        count = (payloadLength + segmentSize - 1) / segmentSize
        firstSequence = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: l4 + 4, as: UInt32.self))
        firstID = ipv6 ? 0 : UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
    }

    /// Writes segment `k` of `packet` to `out` (room for headerLength +
    /// segmentSize bytes); returns its length.
    func write(segment k: Int, of packet: UnsafeRawBufferPointer, to out: UnsafeMutableRawPointer) -> Int {
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
        let tcp = out + ipHeaderLength
        tcp.storeBytes(of: (firstSequence &+ UInt32(truncatingIfNeeded: offset)).bigEndian, toByteOffset: 4,
                       as: UInt32.self)
        var flags = tcp.load(fromByteOffset: 13, as: UInt8.self)
        if k != count - 1 { flags &= ~(Self.flagFIN | Self.flagPSH) }
        if k != 0 { flags &= ~Self.flagCWR }
        tcp.storeBytes(of: flags, toByteOffset: 13, as: UInt8.self)
        let tcpLength = total - ipHeaderLength
        tcp.storeBytes(of: 0, toByteOffset: 16, as: UInt16.self)
        let sum = Checksum.add(Checksum.pseudoHeader(ip: out, ipv6: ipv6, protocol: Self.tcp, length: tcpLength),
                               tcp, tcpLength)
        tcp.storeBytes(of: ~Checksum.fold(sum), toByteOffset: 16, as: UInt16.self)
        return total
    }

    /// Finishes a packet the kernel left with NEEDS_CSUM (CHECKSUM_PARTIAL):
    /// the field at start+offset holds the pseudo-header sum; the sum from
    /// `start` to the end, complemented, goes there. False if the header's
    /// offsets do not fit the packet. A zero result is stored as 0xffff, as
    /// the kernel's skb_checksum_help does (the same value in ones'
    /// complement, and the only valid spelling for UDP).
    static func completeChecksum(_ p: UnsafeMutableRawBufferPointer, header h: VirtioNetHeader) -> Bool {
        let start = Int(h.checksumStart)
        let field = start + Int(h.checksumOffset)
        guard let base = p.baseAddress, field + 2 <= p.count else { return false }
        let sum = ~Checksum.fold(Checksum.add(0, base + start, p.count - start))
        base.storeBytes(of: sum == 0 ? 0xffff : sum, toByteOffset: field, as: UInt16.self)
        return true
    }
}
