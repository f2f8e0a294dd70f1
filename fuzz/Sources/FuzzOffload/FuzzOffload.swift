// Fuzz target 5: the tun offload code (docs/FUZZING.md) — what the kernel
// hands over (a virtio header and a packet to cut) and what an
// authenticated peer sends (IP packets to merge), both untrusted here.
//
// The code is the SqutunDataPath library's (Sources/SqutunDataPath/Offload).
//
// Input byte 0, bit 0 picks the mode:
// - cut: bytes 1-10 are a virtio header, the rest a packet. TSOPlan either
//   refuses it or cuts it into `count` segments that each fit
//   headerLength + segmentSize, carry valid IP/TCP/UDP checksums (checked
//   here with a plain RFC 1071 sum), and whose payloads concatenate to the
//   packet's. completeChecksum on any header never writes out of bounds.
// - merge: the rest is packets, each behind a 2-byte length, given to a
//   Coalescer (UDP merging on or off by bit 1) that writes into a real
//   SOCK_SEQPACKET pair. Every packet is accounted for (written or counted
//   failed), every super-packet written can be cut back by TSOPlan, and
//   cutting them gives back exactly the packets given — up to the IPv4 ids
//   of DF packets (a fixed id may come back incrementing), header checksums
//   and the spelling of transport checksums (0 / 0xffff) — as a multiset.
//   The ids of packets without DF come back exactly: only what Linux's GRO
//   would merge (consecutive ids) is merged.

import FuzzOracle
import Shared
import SqutunSystem
import SqutunDataPath
#if canImport(Glibc)
import Glibc
#endif

// fail/note/require: FuzzOracle.

/// RFC 1071 the slow way, big-endian words: independent of squtun_csum_add.
private func referenceSum(_ bytes: UnsafeRawBufferPointer, _ initial: UInt32 = 0) -> UInt32 {
    var sum = initial
    var i = 0
    while i < bytes.count {
        sum += UInt32(bytes[i]) << 8 | (i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0)
        sum = (sum & 0xffff) + (sum >> 16)
        i += 2
    }
    return sum
}

/// Whether the IPv4 header and the transport checksum of an IP packet verify.
private func checksumsVerify(_ p: [UInt8], udp: Bool) -> Bool {
    p.withUnsafeBytes { b in
        let v6 = p[0] >> 4 == 6
        let ihl = v6 ? 40 : Int(p[0] & 0x0f) * 4
        if !v6 && referenceSum(UnsafeRawBufferPointer(rebasing: b[0..<ihl])) != 0xffff { return false }
        let length = p.count - ihl
        var pseudo = referenceSum(UnsafeRawBufferPointer(rebasing: b[(v6 ? 8 : 12)..<(v6 ? 40 : 20)]))
        pseudo += UInt32(udp ? 17 : 6) + UInt32(length & 0xffff) + UInt32(length >> 16)
        while pseudo > 0xffff { pseudo = (pseudo & 0xffff) + (pseudo >> 16) }  // one fold can leave 0x10000
        return referenceSum(UnsafeRawBufferPointer(rebasing: b[ihl...]), pseudo) == 0xffff
    }
}

nonisolated(unsafe) private var segmentBuffer = [UInt8](repeating: 0, count: 70_000)

/// Cuts `packet` (behind `header`); nil if TSOPlan refuses. Checks each segment.
private func cut(_ packet: [UInt8], _ header: VirtioNetHeader) -> [[UInt8]]? {
    packet.withUnsafeBytes { p -> [[UInt8]]? in
        guard let plan = TSOPlan(packet: p, header: header, maxSegment: Wire.maxPayloadLength) else { return nil }
        require(plan.count >= 1 && plan.count <= 65_536, "segment count \(plan.count)")
        var segments: [[UInt8]] = []
        var payload: [UInt8] = []
        for k in 0..<plan.count {
            let n = segmentBuffer.withUnsafeMutableBytes { plan.write(segment: k, of: p, to: $0.baseAddress!) }
            require(n > plan.headerLength && n <= plan.headerLength + plan.segmentSize, "segment \(k) length \(n)")
            let s = Array(segmentBuffer[0..<n])
            require(checksumsVerify(s, udp: plan.udp), "segment \(k) of \(plan.count): checksums do not verify")
            payload += s[plan.headerLength...]
            segments.append(s)
        }
        require(payload[...] == packet[plan.headerLength...], "payloads do not concatenate to the packet's")
        return segments
    }
}

/// A packet with what may legitimately differ blanked: the IPv4 id if DF
/// is set, the IPv4 header checksum, the transport checksum (0 and 0xffff
/// spell the same sum).
private func normalized(_ p: [UInt8]) -> [UInt8] {
    let view = p.withUnsafeBytes { SegmentView($0.baseAddress!, length: p.count) }
    guard p.count >= 20, view.isSegment else { return p }
    var q = p
    if !view.ipv6 {
        if view.dontFragment { q[4] = 0; q[5] = 0 }
        q[10] = 0; q[11] = 0
    }
    q[view.ipHeaderLength + view.checksumOffset] = 0
    q[view.ipHeaderLength + view.checksumOffset + 1] = 0
    return q
}

nonisolated(unsafe) private let fds: (Int32, Int32) = {
    var pair: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0 else {
        fail("socketpair: \(errno)")
    }
    var size: Int32 = 16 << 20
    setsockopt(pair[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, 4)
    setsockopt(pair[1], SOL_SOCKET, SO_RCVBUFFORCE, &size, 4)
    return (pair[0], pair[1])
}()

nonisolated(unsafe) private let arenaSize = 1 << 20
nonisolated(unsafe) private let arena = UnsafeMutableRawPointer.allocate(byteCount: arenaSize, alignment: 16)
nonisolated(unsafe) private var readBuffer = [UInt8](repeating: 0, count: 70_000)

private func merge(_ data: UnsafeRawBufferPointer, mergeUDP: Bool) {
    // The packets, each behind 10 spare bytes, as the data path has them.
    var packets: [[UInt8]] = []
    var used = 0
    var i = 0
    while i + 2 <= data.count {
        let length = min(Int(data[i]) << 8 | Int(data[i + 1]), data.count - i - 2)
        packets.append(Array(data[(i + 2)..<(i + 2 + length)]))
        i += 2 + length
    }
    let coalescer = Coalescer(fd: FileDescriptor(rawValue: fds.0), mergeUDP: mergeUDP)
    for p in packets {
        if used + VirtioNetHeader.size + p.count + 16 > arenaSize { fail("arena too small: raise it or lower -max_len") }
        used += VirtioNetHeader.size
        let at = arena + used
        arena.advanced(by: used - VirtioNetHeader.size).initializeMemory(as: UInt8.self, repeating: 0xee, count: VirtioNetHeader.size)
        p.withUnsafeBytes { if let b = $0.baseAddress { at.copyMemory(from: b, byteCount: p.count) } }
        coalescer.add(at, length: p.count)
        used += (p.count + 15) & ~15
    }
    coalescer.flush()
    let c = coalescer.counters
    require(c.packets + c.failedPackets == UInt64(packets.count),
            "\(packets.count) packets given, \(c.packets) written + \(c.failedPackets) failed")
    require(c.failedPackets == 0, "\(c.failedPackets) writes failed (the socket pair takes any size here)")

    var out: [[UInt8]] = []
    while true {
        let n = readBuffer.withUnsafeMutableBytes { recv(fds.1, $0.baseAddress, $0.count, 0) }
        if n < 0 { break }
        require(n >= VirtioNetHeader.size, "a write without its virtio header")
        let header = readBuffer.withUnsafeBytes { VirtioNetHeader(loading: $0.baseAddress!) }
        let packet = Array(readBuffer[VirtioNetHeader.size..<n])
        if header == VirtioNetHeader() {
            out.append(packet)
        } else {
            require(header.flags == VirtioNetHeader.needsChecksum, "merged write flags \(header.flags)")
            guard let segments = cut(packet, header) else { fail("a merged super-packet TSOPlan refuses: \(header)") }
            require(segments.count >= 2, "a merged write of one packet")
            out += segments
        }
    }
    let given = packets.map(normalized).sorted { $0.lexicographicallyPrecedes($1) }
    let got = out.map(normalized).sorted { $0.lexicographicallyPrecedes($1) }
    require(given.count == got.count, "\(given.count) packets given, \(got.count) came out")
    require(given == got, "the packets that came out are not the ones given")
    note("merge: \(packets.count) packets, \(c.mergedWrites) merged writes of \(c.mergedPackets)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOffload(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let mode = input[0]
    let rest = UnsafeRawBufferPointer(rebasing: input[1...])
    if mode & 1 == 0 {
        guard rest.count >= VirtioNetHeader.size else { return 0 }
        let header = VirtioNetHeader(loading: rest.baseAddress!)
        var packet = Array(rest[VirtioNetHeader.size...])
        if let segments = cut(packet, header) {
            note("cut: \(segments.count) segments")
        }
        // Finishing a partial checksum: any offsets, never out of bounds.
        let fits = Int(header.checksumStart) + Int(header.checksumOffset) + 2 <= packet.count
        let done = packet.withUnsafeMutableBytes { TSOPlan.completeChecksum($0, header: header) }
        require(done == fits, "completeChecksum said \(done) for offsets that fit: \(fits)")
    } else {
        merge(rest, mergeUDP: mode & 2 != 0)
    }
    return 0
}
