import Shared
import SqutunSystem
import Glibc

/// GRO for the tun side: the authenticated packets of one received batch
/// that are consecutive segments of one TCP flow, or equal-sized datagrams
/// of one UDP flow, go to the kernel as one super-packet (one writev, one
/// trip through the stack) instead of one write each. Only what Linux's
/// own GRO (tcp_gro_receive, udp_gro_receive) would merge is merged: same
/// addresses and ports, same IP header fields; IPv4 ids as GRO wants them
/// (below); for TCP the same ACK, window and options, sequence numbers that
/// follow on, plain ACK segments with PSH only on the last; every checksum
/// verified first (a bad segment
/// goes to the kernel alone and unchanged, so it is dropped there as it
/// would have been). Everything else is written as it came. The kernel
/// cuts a UDP super-packet back into the same datagrams for a socket that
/// did not ask for UDP GRO itself.
///
/// IPv4 ids (Linux's inet_gro_flush, 6.10+, and the flush_id/is_atomic
/// checks before it): segment k of a merge must carry the first one's id
/// + k; only with DF set may the id instead stay fixed, which the second
/// segment decides for the whole merge. A super-packet is cut again with
/// id + k (the virtio header has no fixed-id flag), so without DF, where
/// the id still matters to fragment reassembly, the ids that come out are
/// exactly the ones that went in; with DF a fixed id may come out
/// incrementing, which nothing reads (RFC 6864: an atomic datagram's id
/// has no meaning).
///
/// Nothing is copied: a merged packet is a writev of a rebuilt header and
/// the payloads where they were decrypted. So the caller's packets must
/// stay in place until `flush()`, and the `requiredHeadroom` (10) bytes in
/// front of each packet are ours (a packet written alone gets its virtio
/// header there). The caller declares at `init` how many such bytes its
/// packets have, the cipher suite's `headroom` (the IV, which opening has
/// consumed): too few stops the process there, not a datagram later.
public final class Coalescer {
    public static let maxFlows = 8
    /// Segments per super-packet (and iovecs per writev, header included).
    public static let maxSegments = 64
    /// Virtio header + IPv4 (no options) or IPv6 + TCP with options.
    public static let headerRoom = VirtioNetHeader.size + 40 + 60
    /// UDP super-packets only when the device takes them (TUN_F_USO4/6,
    /// Linux 6.2); TCP ones always.
    public let mergeUDP: Bool
    /// Bytes the coalescer writes in front of a packet it is given.
    public static let requiredHeadroom = VirtioNetHeader.size
    /// What the caller promised is free in front of each packet.
    public let headroom: Int

    /// Whether packets with `headroom` free bytes in front leave room enough.
    public static func fits(headroom: Int) -> Bool { headroom >= requiredHeadroom }

    public struct Flow {
        public var active = false
        public var packet: SegmentView = .none
        /// The first packet, in the caller's buffer.
        public var first: UnsafeMutableRawPointer?
        public var count = 0
        public var payloadBytes = 0
        public var nextSequence: UInt32 = 0
        /// PSH seen, or a segment shorter than the first: nothing may follow.
        public var closed = false
        /// IPv4 with DF: the second segment had the first one's id, so all do.
        public var fixedID = false
        public var push = false
    }

    /// Bytes and packets handed to the kernel, what it refused, and the
    /// merges: the device I/O's counters (only the write side is used here).
    public typealias Counters = DeviceCounters

    private let fd: FileDescriptor
    private let flows: UnsafeMutablePointer<Flow>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let headers: UnsafeMutableRawPointer
    private var evict = 0
    public private(set) var counters = Counters()

    /// `headroom`: bytes free in front of every packet given to `add` (the
    /// opener's suite declares them); at least `requiredHeadroom`.
    public init(fd: FileDescriptor, mergeUDP: Bool, headroom: Int = Wire.Suite.headroom) {
        precondition(Self.fits(headroom: headroom),
                     "the coalescer needs \(Self.requiredHeadroom) free bytes in front of each packet, "
                     + "the cipher suite leaves \(headroom)")
        self.fd = fd
        self.mergeUDP = mergeUDP
        self.headroom = headroom
        flows = .allocate(capacity: Self.maxFlows)
        flows.initialize(repeating: Flow(), count: Self.maxFlows)
        iovecs = .allocate(capacity: Self.maxFlows * (Self.maxSegments + 1))
        iovecs.initialize(repeating: iovec(), count: Self.maxFlows * (Self.maxSegments + 1))
        headers = .allocate(byteCount: Self.maxFlows * Self.headerRoom, alignment: 8)
        headers.initializeMemory(as: UInt8.self, repeating: 0, count: Self.maxFlows * Self.headerRoom)
    }

    deinit {
        flows.deallocate()
        iovecs.deallocate()
        headers.deallocate()
    }

    /// Takes one authenticated IP packet of `length` bytes at `p`: holds it
    /// to merge, or writes it (after the held packets of its flow).
    public func add(_ p: UnsafeMutableRawPointer, length: Int) {
        let view = SegmentView(p, length: length)
        guard view.isSegment else { writeSingle(p, length: length); return }
        var mergeable = view.isMergeable && (mergeUDP || !view.isUDP)
        var checked = false
        for i in 0..<Self.maxFlows where flows[i].active && view.sameFlow(p, as: flows[i].first!, head: flows[i].packet) {
            if mergeable {
                checked = true
                mergeable = view.checksumsValid(p)
                if mergeable && canAppend(i, view, p) {
                    append(i, view, p)
                    return
                }
            }
            flush(i)  // order within a flow is kept
            break
        }
        if mergeable && (checked || view.checksumsValid(p)) {
            start(view, p)
        } else {
            writeSingle(p, length: length)
        }
    }

    /// Writes every held flow. Call before the packets' buffer is reused.
    public func flush() {
        for i in 0..<Self.maxFlows where flows[i].active { flush(i) }
    }

    // MARK: Merging

    private func canAppend(_ i: Int, _ v: SegmentView, _ p: UnsafeRawPointer) -> Bool {
        let f = flows[i]
        let head = f.packet
        guard !f.closed, f.count < Self.maxSegments, v.isUDP || v.sequence == f.nextSequence,
              v.payloadLength <= head.payloadLength,
              v.transportHeaderLength == head.transportHeaderLength, v.ipHeaderLength == head.ipHeaderLength,
              head.headerLength + f.payloadBytes + v.payloadLength <= (v.ipv6 ? 65535 + 40 : 65535),
              v.ipv6 || Self.idFollows(v, f) != nil
        else { return false }
        return v.sameHeaderFields(p, as: f.first!)
    }

    /// Whether IPv4 segment `v` may be the next of flow `f` by its id (see
    /// the type's comment): nil if not, else whether the merge has a fixed
    /// id from here on. DF is the same on every segment (sameHeaderFields).
    @inline(__always)
    public static func idFollows(_ v: SegmentView, _ f: Flow) -> Bool? {
        let offset = v.ipID &- f.packet.ipID
        if f.fixedID { return offset == 0 ? true : nil }
        if offset == UInt16(truncatingIfNeeded: f.count) { return false }
        return f.count == 1 && offset == 0 && v.dontFragment ? true : nil
    }

    private func start(_ v: SegmentView, _ p: UnsafeMutableRawPointer) {
        var slot = -1
        for i in 0..<Self.maxFlows where !flows[i].active { slot = i; break }
        if slot < 0 {
            slot = evict
            evict = (evict + 1) % Self.maxFlows
            flush(slot)
        }
        flows[slot] = Flow(active: true, packet: v, first: p, count: 1, payloadBytes: v.payloadLength,
                           nextSequence: v.sequence &+ UInt32(v.payloadLength), closed: v.push, push: v.push)
        let iov = iovecs + slot * (Self.maxSegments + 1)
        iov[1] = iovec(iov_base: p + v.headerLength, iov_len: v.payloadLength)
    }

    private func append(_ i: Int, _ v: SegmentView, _ p: UnsafeMutableRawPointer) {
        if !v.ipv6 { flows[i].fixedID = Self.idFollows(v, flows[i]) ?? false }
        let iov = iovecs + i * (Self.maxSegments + 1)
        flows[i].count += 1
        iov[flows[i].count] = iovec(iov_base: p + v.headerLength, iov_len: v.payloadLength)
        flows[i].payloadBytes += v.payloadLength
        flows[i].nextSequence = v.sequence &+ UInt32(v.payloadLength)
        if v.push || v.payloadLength < flows[i].packet.payloadLength { flows[i].closed = true }
        flows[i].push = flows[i].push || v.push
    }

    private func flush(_ i: Int) {
        let f = flows[i]
        flows[i].active = false
        guard f.count > 1 else {
            writeSingle(f.first!, length: f.packet.headerLength + f.packet.payloadLength)
            return
        }
        // The first packet's headers, with the merged lengths, PSH if any
        // segment had it, the IPv4 header checksum recomputed and the
        // transport checksum left partial (the pseudo-header sum):
        // NEEDS_CSUM tells the kernel the payload's checksums were verified.
        let h = f.packet
        let out = headers + i * Self.headerRoom
        let ip = out + VirtioNetHeader.size
        ip.copyMemory(from: f.first!, byteCount: h.headerLength)
        let transportLength = h.transportHeaderLength + f.payloadBytes
        if h.ipv6 {
            ip.storeBytes(of: UInt16(transportLength).bigEndian, toByteOffset: 4, as: UInt16.self)
        } else {
            ip.storeBytes(of: UInt16(h.ipHeaderLength + transportLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            Checksum.setIPv4Header(ip, headerLength: h.ipHeaderLength)
        }
        let transport = ip + h.ipHeaderLength
        let gsoType: UInt8
        if h.isUDP {
            transport.storeBytes(of: UInt16(transportLength).bigEndian, toByteOffset: 4, as: UInt16.self)
            gsoType = VirtioNetHeader.gsoUDPL4
        } else {
            if f.push {
                transport.storeBytes(of: transport.load(fromByteOffset: 13, as: UInt8.self) | SegmentView.flagPSH,
                                     toByteOffset: 13, as: UInt8.self)
            }
            gsoType = h.ipv6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4
        }
        let pseudo = Checksum.pseudoHeader(ip: ip, ipv6: h.ipv6, protocol: h.proto, length: transportLength)
        transport.storeBytes(of: Checksum.fold(pseudo), toByteOffset: h.checksumOffset, as: UInt16.self)
        VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: gsoType,
                        headerLength: UInt16(h.headerLength), gsoSize: UInt16(h.payloadLength),
                        checksumStart: UInt16(h.ipHeaderLength), checksumOffset: UInt16(h.checksumOffset)).store(to: out)

        let iov = iovecs + i * (Self.maxSegments + 1)
        iov[0] = iovec(iov_base: out, iov_len: VirtioNetHeader.size + h.headerLength)
        let written = writev(fd.rawValue, iov, Int32(f.count + 1))
        let n = UInt64(f.count)
        if written == VirtioNetHeader.size + h.headerLength + f.payloadBytes {
            counters.packets &+= n
            counters.bytes &+= UInt64(h.headerLength) &* n &+ UInt64(f.payloadBytes)
            counters.mergedWrites &+= 1
            counters.mergedPackets &+= n
        } else {
            counters.failedPackets &+= n
        }
    }

    /// One packet as it is, behind a plain virtio header in the headroom
    /// (checked at `init`).
    private func writeSingle(_ p: UnsafeMutableRawPointer, length: Int) {
        let start = p - Self.requiredHeadroom
        VirtioNetHeader.storePlain(to: start)
        if Glibc.write(fd.rawValue, start, VirtioNetHeader.size + length) == VirtioNetHeader.size + length {
            counters.packets &+= 1
            counters.bytes &+= UInt64(length)
        } else {
            counters.failedPackets &+= 1
        }
    }
}
