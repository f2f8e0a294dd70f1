import XCTest
import CShim
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
import Shared
import squtun_crypto
#if canImport(Glibc)
import Glibc
#endif

/// The tun offload code (checksum, TSO split, GRO merge) against a plain
/// byte-pair RFC 1071 checksum written here, and the merger writing to a
/// real SOCK_SEQPACKET socket pair (one message per write, as a tun takes
/// one packet per write).
final class OffloadTests: XCTestCase {
    // MARK: Independent reference

    /// RFC 1071 the slow way: big-endian 16-bit words, end-around carry.
    static func referenceSum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt16 {
        var sum = initial
        var i = 0
        while i < bytes.count {
            let hi = UInt32(bytes[i]) << 8
            let lo = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            sum += hi | lo
            sum = (sum & 0xffff) + (sum >> 16)
            i += 2
        }
        return UInt16(sum & 0xffff)
    }

    /// The TCP/UDP checksum of `packet` verifies (pseudo-header included).
    static func transportChecksumOK(_ packet: [UInt8], proto: UInt8 = 6) -> Bool {
        let v6 = packet[0] >> 4 == 6
        let ihl = v6 ? 40 : Int(packet[0] & 0x0f) * 4
        let length = packet.count - ihl
        var pseudo = v6 ? Array(packet[8..<40]) : Array(packet[12..<20])
        pseudo += [0, proto, UInt8(length >> 8), UInt8(length & 0xff)]
        let sum = referenceSum(pseudo + Array(packet[ihl...]))
        return sum == 0xffff
    }

    static func ipv4HeaderOK(_ packet: [UInt8]) -> Bool {
        referenceSum(Array(packet[0..<Int(packet[0] & 0x0f) * 4])) == 0xffff
    }

    /// An IPv4 or IPv6 TCP packet with correct checksums; `options` are
    /// TCP option bytes (a multiple of 4).
    static func tcpPacket(v6: Bool = false, seq: UInt32, payload: [UInt8], flags: UInt8 = 0x10,
                          options: [UInt8] = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], srcPort: UInt16 = 40000,
                          ack: UInt32 = 777, window: UInt16 = 512, ttl: UInt8 = 64, id: UInt16 = 100,
                          df: Bool = true) -> [UInt8] {
        let tcpLength = 20 + options.count
        var tcp: [UInt8] = [UInt8(srcPort >> 8), UInt8(srcPort & 0xff), 0x14, 0x51]
        tcp += withUnsafeBytes(of: seq.bigEndian, Array.init) + withUnsafeBytes(of: ack.bigEndian, Array.init)
        tcp += [UInt8(tcpLength / 4) << 4, flags, UInt8(window >> 8), UInt8(window & 0xff), 0, 0, 0, 0]
        tcp += options + payload
        var ip: [UInt8]
        if v6 {
            let len = tcp.count
            ip = [0x60, 0, 0, 0, UInt8(len >> 8), UInt8(len & 0xff), 6, ttl]
            ip += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
            ip += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2]
        } else {
            let total = 20 + tcp.count
            ip = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), UInt8(id >> 8), UInt8(id & 0xff), df ? 0x40 : 0, 0, ttl,
                  6, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2]
            let c = ~referenceSum(ip)
            ip[10] = UInt8(c >> 8)
            ip[11] = UInt8(c & 0xff)
        }
        var packet = ip + tcp
        let ihl = ip.count
        let length = tcp.count
        var pseudo = v6 ? Array(packet[8..<40]) : Array(packet[12..<20])
        pseudo += [0, 6, UInt8(length >> 8), UInt8(length & 0xff)]
        let c = ~referenceSum(pseudo + tcp)
        packet[ihl + 16] = UInt8(c >> 8)
        packet[ihl + 17] = UInt8(c & 0xff)
        return packet
    }

    static func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var x = seed | 1
        return (0..<n).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    static func be32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    // MARK: Checksum

    func testChecksumMatchesReferenceForEveryLength() {
        // RFC 1071 §3's example.
        let example: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        XCTAssertEqual(Self.referenceSum(example), 0xddf2)
        example.withUnsafeBytes {
            XCTAssertEqual(UInt16(bigEndian: Checksum.fold(Checksum.add(0, $0.baseAddress!, 8))), 0xddf2)
        }
        for length in 0...300 {
            let bytes = Self.randomBytes(length, seed: UInt64(length) &* 0x9e37_79b9)
            let ours = bytes.withUnsafeBytes { Checksum.fold(Checksum.add(0, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, length)) }
            XCTAssertEqual(UInt16(bigEndian: ours), Self.referenceSum(bytes), "length \(length)")
        }
        for length in [1399, 1400, 1401, 4096, 65_535] {
            let bytes = Self.randomBytes(length, seed: UInt64(length))
            let ours = bytes.withUnsafeBytes { Checksum.fold(Checksum.add(0x1234_5678_9abc, $0.baseAddress!, length)) }
            let initial = Self.referenceSum([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc].reversed())
            XCTAssertEqual(UInt16(bigEndian: ours), Self.referenceSum(bytes, initial: UInt32(initial)), "length \(length) on a running sum")
        }
        // All-ones words: the end-around carry of the 64-bit sum matters.
        let ones = [UInt8](repeating: 0xff, count: 4096)
        ones.withUnsafeBytes { XCTAssertEqual(Checksum.fold(Checksum.add(0, $0.baseAddress!, 4096)), 0xffff) }
    }

    // MARK: TSO split

    private func split(_ superPacket: [UInt8], gso: Int, v6: Bool) throws -> [[UInt8]] {
        let header = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum,
                                     gsoType: v6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4,
                                     headerLength: 1500, gsoSize: UInt16(gso), checksumStart: v6 ? 40 : 20,
                                     checksumOffset: 16)
        return try superPacket.withUnsafeBytes { p in
            let plan = try XCTUnwrap(TSOPlan(packet: p, header: header, maxSegment: 65423))
            var out = [UInt8](repeating: 0, count: 65536)
            return (0..<plan.count).map { k in
                let n = out.withUnsafeMutableBytes { plan.write(segment: k, of: p, to: $0.baseAddress!) }
                return Array(out[0..<n])
            }
        }
    }

    func testSplitGivesTheSegmentsTheKernelWould() throws {
        for v6 in [false, true] {
            let payload = Self.randomBytes(10_001, seed: 42)
            // The kernel's super-packet: PSH|ACK|FIN|CWR, checksum field holding anything.
            var big = Self.tcpPacket(v6: v6, seq: 0xffff_ff00, payload: payload, flags: 0x10 | 0x08 | 0x01 | 0x80, id: 0xfffe)
            let ihl = v6 ? 40 : 20
            big[ihl + 16] = 0x12
            let segments = try split(big, gso: 1000, v6: v6)
            XCTAssertEqual(segments.count, 11)
            var joined: [UInt8] = []
            for (k, s) in segments.enumerated() {
                let hl = ihl + 32
                XCTAssertEqual(s.count, hl + (k == 10 ? 1 : 1000))
                XCTAssertTrue(Self.transportChecksumOK(s), "v6 \(v6) segment \(k): TCP checksum")
                if v6 {
                    XCTAssertEqual(Int(s[4]) << 8 | Int(s[5]), s.count - 40)
                } else {
                    XCTAssertTrue(Self.ipv4HeaderOK(s), "segment \(k): IPv4 header checksum")
                    XCTAssertEqual(Int(s[2]) << 8 | Int(s[3]), s.count)
                    XCTAssertEqual(UInt16(s[4]) << 8 | UInt16(s[5]), 0xfffe &+ UInt16(k), "ids count up")
                }
                XCTAssertEqual(Self.be32(s, ihl + 4), 0xffff_ff00 &+ UInt32(k * 1000), "sequence (wraps)")
                let flags = s[ihl + 13]
                XCTAssertEqual(flags & 0x10, 0x10)
                XCTAssertEqual(flags & 0x09 != 0, k == 10, "FIN and PSH only on the last")
                XCTAssertEqual(flags & 0x80 != 0, k == 0, "CWR only on the first")
                XCTAssertEqual(Array(s[(ihl + 20)..<(ihl + 32)]), Array(big[(ihl + 20)..<(ihl + 32)]), "options kept")
                joined += s[hl...]
            }
            XCTAssertEqual(joined, payload)
        }
    }

    /// A UDP datagram with a correct checksum (or `zeroChecksum`).
    static func udpPacket(v6: Bool = false, payload: [UInt8], srcPort: UInt16 = 5000, ttl: UInt8 = 64,
                          zeroChecksum: Bool = false, id: UInt16 = 7, df: Bool = true) -> [UInt8] {
        let udpLength = 8 + payload.count
        var udp: [UInt8] = [UInt8(srcPort >> 8), UInt8(srcPort & 0xff), 0x23, 0x29,
                            UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 0, 0] + payload
        var ip: [UInt8]
        if v6 {
            ip = [0x60, 0, 0, 0, UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 17, ttl]
            ip += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
            ip += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2]
        } else {
            let total = 20 + udpLength
            ip = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), UInt8(id >> 8), UInt8(id & 0xff), df ? 0x40 : 0, 0, ttl,
                  17, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2]
            let c = ~referenceSum(ip)
            ip[10] = UInt8(c >> 8)
            ip[11] = UInt8(c & 0xff)
        }
        if !zeroChecksum {
            let pseudo = (v6 ? Array(ip[8..<40]) : Array(ip[12..<20])) + [0, 17, UInt8(udpLength >> 8), UInt8(udpLength & 0xff)]
            var c = ~referenceSum(pseudo + udp)
            if c == 0 { c = 0xffff }
            udp[6] = UInt8(c >> 8)
            udp[7] = UInt8(c & 0xff)
        }
        return ip + udp
    }

    func testSplitCutsAUDPSuperPacketIntoItsDatagrams() throws {
        for v6 in [false, true] {
            let payload = Self.randomBytes(5 * 1200 + 17, seed: 7)
            let big = Self.udpPacket(v6: v6, payload: payload)
            let ihl = v6 ? 40 : 20
            let header = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.gsoUDPL4,
                                         headerLength: 0, gsoSize: 1200, checksumStart: UInt16(ihl), checksumOffset: 6)
            let segments = try big.withUnsafeBytes { p in
                let plan = try XCTUnwrap(TSOPlan(packet: p, header: header, maxSegment: 65423))
                XCTAssertTrue(plan.udp)
                var out = [UInt8](repeating: 0, count: 65536)
                return (0..<plan.count).map { k in
                    Array(out[0..<out.withUnsafeMutableBytes { plan.write(segment: k, of: p, to: $0.baseAddress!) }])
                }
            }
            XCTAssertEqual(segments.map(\.count), [Int](repeating: ihl + 8 + 1200, count: 5) + [ihl + 8 + 17])
            for (k, s) in segments.enumerated() {
                XCTAssertTrue(Self.transportChecksumOK(s, proto: 17), "v6 \(v6) datagram \(k)")
                XCTAssertEqual(Int(s[ihl + 4]) << 8 | Int(s[ihl + 5]), s.count - ihl, "UDP length")
                if !v6 { XCTAssertTrue(Self.ipv4HeaderOK(s)) }
            }
            XCTAssertEqual(segments.flatMap { $0[(ihl + 8)...] }, payload)
        }
    }

    func testAllOnesAddressesKeepTheirCarry() throws {
        // Found by the offload fuzz target: addresses of all ones make the
        // pseudo-header's 64-bit sum 2^64 - 1, and adding the protocol and
        // length to it must not drop the carry.
        var big = Self.udpPacket(payload: Self.randomBytes(2000, seed: 3))
        for i in 12..<20 { big[i] = 0xff }
        let header = VirtioNetHeader(flags: 1, gsoType: VirtioNetHeader.gsoUDPL4, headerLength: 0, gsoSize: 700,
                                     checksumStart: 20, checksumOffset: 6)
        try big.withUnsafeBytes { p in
            let plan = try XCTUnwrap(TSOPlan(packet: p, header: header, maxSegment: 65423))
            var out = [UInt8](repeating: 0, count: 4096)
            for k in 0..<plan.count {
                let s = Array(out[0..<out.withUnsafeMutableBytes { plan.write(segment: k, of: p, to: $0.baseAddress!) }])
                XCTAssertTrue(Self.transportChecksumOK(s, proto: 17), "datagram \(k)")
            }
        }
        var v6 = Self.tcpPacket(v6: true, seq: 1, payload: Self.randomBytes(100, seed: 4))
        for i in 8..<40 { v6[i] = 0xff }
        XCTAssertTrue(v6.withUnsafeBytes { p in
            Checksum.fold(Checksum.pseudoHeader(ip: p.baseAddress!, ipv6: true, protocol: 6, length: 132)) != 0
        })
        let (c, read) = makeCoalescer()
        var a = Self.tcpPacket(v6: true, seq: 1, payload: Self.randomBytes(100, seed: 5))
        var b = Self.tcpPacket(v6: true, seq: 101, payload: Self.randomBytes(100, seed: 6))
        for i in 8..<40 { a[i] = 0xff; b[i] = 0xff }
        // Re-checksum with the new addresses (the reference handles any carry).
        for i in [0, 1] {
            var p = i == 0 ? a : b
            p[56] = 0; p[57] = 0
            let len = p.count - 40
            let sum = ~Self.referenceSum(Array(p[8..<40]) + [0, 6, UInt8(len >> 8), UInt8(len & 0xff)] + Array(p[40...]))
            p[56] = UInt8(sum >> 8); p[57] = UInt8(sum & 0xff)
            if i == 0 { a = p } else { b = p }
        }
        XCTAssertTrue(Self.transportChecksumOK(a) && Self.transportChecksumOK(b))
        feed(c, Arena(), [a, b])
        let out = read().map(unwrap)
        XCTAssertEqual(out.count, 1, "merged: both checksums verified despite the all-ones addresses")
        XCTAssertTrue(out.first.map { Self.transportChecksumOK($0.1) } ?? false)
    }

    func testSplitRefusesWhatIsNotATCPSuperPacket() {
        let good = Self.tcpPacket(seq: 1, payload: Self.randomBytes(3000, seed: 1))
        func plan(_ p: [UInt8], _ h: VirtioNetHeader) -> Bool {
            p.withUnsafeBytes { TSOPlan(packet: $0, header: h, maxSegment: 65423) != nil }
        }
        let h = VirtioNetHeader(flags: 1, gsoType: VirtioNetHeader.gsoTCPv4, headerLength: 52, gsoSize: 1000,
                                checksumStart: 20, checksumOffset: 16)
        XCTAssertTrue(plan(good, h))
        var bad = h; bad.gsoType = VirtioNetHeader.gsoTCPv6
        XCTAssertFalse(plan(good, bad), "IPv4 packet said to be IPv6")
        bad = h; bad.gsoType = VirtioNetHeader.gsoUDP
        XCTAssertFalse(plan(good, bad), "UDP segmentation is not asked for")
        bad = h; bad.checksumStart = 24
        XCTAssertFalse(plan(good, bad), "checksum start is not the IP header length")
        bad = h; bad.gsoSize = 0
        XCTAssertFalse(plan(good, bad), "zero segment size")
        bad = h; bad.gsoSize = 65423
        XCTAssertFalse(plan(good, bad), "segments too big to seal")
        bad = h; bad.flags = 0
        XCTAssertFalse(plan(good, bad), "no partial checksum")
        XCTAssertFalse(plan(Array(good[0..<30]), h), "truncated TCP header")
        var udp = good; udp[9] = 17
        XCTAssertFalse(plan(udp, h), "not TCP")
        var shortOffset = good; shortOffset[32] = 0x40
        XCTAssertFalse(plan(shortOffset, h), "TCP data offset below 5")
        XCTAssertFalse(plan(Array(good[0..<52]), h), "no payload")
    }

    func testPartialChecksumIsCompleted() {
        // A UDP datagram as a tun with TUN_F_CSUM hands it over: the checksum
        // field holds the folded pseudo-header sum.
        for length in [1, 2, 3, 63, 1000, 1001] {
            let payload = Self.randomBytes(length, seed: UInt64(length))
            let udpLength = 8 + length
            var p: [UInt8] = [0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2]
            p += [0x9c, 0x40, 0x11, 0x5c, UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 0, 0] + payload
            let pseudo = Self.referenceSum(Array(p[12..<20]) + [0, 17, UInt8(udpLength >> 8), UInt8(udpLength & 0xff)])
            p[26] = UInt8(pseudo >> 8)
            p[27] = UInt8(pseudo & 0xff)
            let h = VirtioNetHeader(flags: 1, gsoType: 0, headerLength: 0, gsoSize: 0, checksumStart: 20, checksumOffset: 6)
            XCTAssertTrue(p.withUnsafeMutableBytes { TSOPlan.completeChecksum($0, header: h) })
            XCTAssertTrue(Self.transportChecksumOK(p, proto: 17), "length \(length)")
            XCTAssertFalse(p[26] == 0 && p[27] == 0, "UDP never carries a zero checksum")
        }
        var p = [UInt8](repeating: 0, count: 30)
        let h = VirtioNetHeader(flags: 1, gsoType: 0, headerLength: 0, gsoSize: 0, checksumStart: 20, checksumOffset: 9)
        XCTAssertFalse(p.withUnsafeMutableBytes { TSOPlan.completeChecksum($0, header: h) }, "field beyond the end")
    }

    // MARK: GRO merge

    private var sockets: [Int32] = []

    override func tearDown() {
        sockets.forEach { close($0) }
        sockets = []
        super.tearDown()
    }

    // MARK: The headroom contract

    /// The coalescer writes a virtio header into the bytes in front of each
    /// packet; the opener's cipher suite declares how many of them an opened
    /// datagram leaves free, and the coalescer checks that at `init`. Then,
    /// through the real opener: datagrams opened in place and handed over
    /// as the data path does come out of the coalescer intact, alone (the
    /// header written in the headroom) and merged.
    func testCoalescerHeadroomIsTheSuitesAndSuffices() throws {
        typealias Suite = Opener.Suite
        XCTAssertEqual(Coalescer.requiredHeadroom, VirtioNetHeader.size)
        XCTAssertFalse(Coalescer.fits(headroom: VirtioNetHeader.size - 1))
        XCTAssertTrue(Coalescer.fits(headroom: VirtioNetHeader.size))
        XCTAssertTrue(Coalescer.fits(headroom: Suite.headroom))
        XCTAssertLessThanOrEqual(Suite.headroom, Suite.payloadOffset, "the headroom is inside the datagram")
        let (c, read) = makeCoalescer()
        XCTAssertEqual(c.headroom, Suite.headroom)

        let psk = SecretBytes(count: 32)
        psk.withUnsafeMutableBytes { for i in 0..<32 { $0[i] = UInt8(truncatingIfNeeded: i &* 11 &+ 3) } }
        let sender = try SuiteCrypto<PacketCipher>(psk: psk, start: RunStart(session: 0x2000, wallMs: 1, monotonicMs: 1),
                                      skewSeconds: 0)
        let receiver = try SuiteCrypto<PacketCipher>(psk: psk, start: RunStart(session: 0x1000, wallMs: 1, monotonicMs: 1),
                                        skewSeconds: 0)
        let tcp = segments(sizes: [1000, 1000])
        var other = Self.tcpPacket(seq: 1, payload: Self.randomBytes(300, seed: 9))
        other[9] = 1  // not TCP: written alone
        let packets = [tcp[0], tcp[1], other]
        // One datagram after the other in one buffer, as UDP GRO leaves them.
        let lengths = packets.map { Suite.packetLength(payload: $0.count) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: lengths.reduce(0, +), alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        for (p, n) in zip(packets, lengths) {
            let slot = UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + n])
            p.withUnsafeBytes { (slot.baseAddress! + Suite.payloadStart).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            XCTAssertEqual(try sender.sealer.seal(type: .data, payloadLength: p.count, packet: slot, nowMs: 1), n)
            offset += n
        }
        offset = 0
        for (p, n) in zip(packets, lengths) {
            let slot = UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + n])
            XCTAssertEqual(receiver.opener.open(slot, fromPeer: true, nowMs: 1, monotonicMs: 1), .data(length: p.count))
            c.add(slot.baseAddress! + Suite.payloadStart, length: p.count)
            offset += n
        }
        c.flush()
        let out = read()
        XCTAssertEqual(out.count, 2)
        guard out.count == 2 else { return }
        XCTAssertEqual(Array(out[0][VirtioNetHeader.size...]), other, "the packet written alone")
        let (h, merged) = unwrap(out[1])
        XCTAssertEqual(h.gsoType, VirtioNetHeader.gsoTCPv4)
        let header = tcp[0].count - 1000
        XCTAssertEqual(Array(merged[header...]), Array(tcp[0][header...]) + Array(tcp[1][header...]))
    }

    /// A coalescer writing into one end of a SOCK_SEQPACKET pair; `read`
    /// returns each write as one message.
    private func makeCoalescer(mergeUDP: Bool = true) -> (Coalescer, () -> [[UInt8]]) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds), 0)
        var size: Int32 = 4 << 20
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, 4)
        setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &size, 4)
        sockets += fds
        let reader = fds[1]
        return (Coalescer(fd: FileDescriptor(rawValue: fds[0]), mergeUDP: mergeUDP), {
            var out: [[UInt8]] = []
            var buffer = [UInt8](repeating: 0, count: 70_000)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(reader, $0.baseAddress, $0.count, 0) }
                if n < 0 { return out }
                out.append(Array(buffer[0..<n]))
            }
        })
    }

    /// Packets laid out as the data path has them: each behind 10 spare bytes.
    private final class Arena {
        let base = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        var used = 0
        func place(_ p: [UInt8]) -> (UnsafeMutableRawPointer, Int) {
            used += VirtioNetHeader.size
            let at = base + used
            p.withUnsafeBytes { at.copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            used += (p.count + 15) & ~15
            return (at, p.count)
        }
        deinit { base.deallocate() }
    }

    private func feed(_ c: Coalescer, _ arena: Arena, _ packets: [[UInt8]]) {
        for p in packets {
            let (at, n) = arena.place(p)
            c.add(at, length: n)
        }
        c.flush()
    }

    /// The merged packet with its checksum completed as the kernel would
    /// (NEEDS_CSUM), and its virtio header.
    private func unwrap(_ message: [UInt8]) -> (VirtioNetHeader, [UInt8]) {
        let h = message.withUnsafeBytes { VirtioNetHeader(loading: $0.baseAddress!) }
        var p = Array(message[VirtioNetHeader.size...])
        if h.flags & VirtioNetHeader.needsChecksum != 0 {
            XCTAssertTrue(p.withUnsafeMutableBytes { TSOPlan.completeChecksum($0, header: h) })
        }
        return (h, p)
    }

    private func segments(v6: Bool = false, seq: UInt32 = 1000, sizes: [Int], flags: [UInt8]? = nil,
                          srcPort: UInt16 = 40000, ids: [UInt16]? = nil, df: Bool = true) -> [[UInt8]] {
        var s = seq
        return sizes.enumerated().map { i, n in
            defer { s &+= UInt32(n) }
            return Self.tcpPacket(v6: v6, seq: s, payload: Self.randomBytes(n, seed: UInt64(s)), flags: flags?[i] ?? 0x10,
                                  srcPort: srcPort, id: ids?[i] ?? UInt16(i), df: df)
        }
    }

    /// IPv4 ids as Linux's GRO (inet_gro_flush) wants them: id + k for
    /// segment k, or with DF also one fixed id; anything else is not merged.
    func testIPv4IDsMustFollowAsLinuxGROWants() throws {
        // (ids, DF, the segment counts of the writes that come out)
        let cases: [([UInt16], Bool, [Int])] = [
            ([7, 8, 9, 10], false, [4]),          // incrementing, no DF: merged
            ([0xfffe, 0xffff, 0, 1], false, [4]), // the id wraps
            ([7, 7, 7, 7], false, [1, 1, 1, 1]),  // fixed without DF: Linux would not merge
            ([7, 9, 11, 13], false, [1, 1, 1, 1]),// a stride
            ([7, 8, 20, 21], false, [2, 2]),      // a jump ends the merge, the next one starts
            ([7, 8, 9, 10], true, [4]),           // incrementing with DF
            ([7, 7, 7, 7], true, [4]),            // fixed with DF
            ([7, 7, 8, 9], true, [2, 2]),         // fixed, decided by the second: then 8 breaks it
            ([7, 8, 8, 9], true, [2, 2]),         // incrementing, decided by the second: then 8 again breaks it
            ([3, 900, 4, 77], true, [1, 1, 1, 1]),// neither
        ]
        for (ids, df, expected) in cases {
            let (c, read) = makeCoalescer()
            let input = segments(sizes: [500, 500, 500, 500], ids: ids, df: df)
            feed(c, Arena(), input)
            let out = read().map(unwrap)
            let counts = out.map { h, p in h.gsoType == 0 ? 1 : (p.count - 52 + Int(h.gsoSize) - 1) / Int(h.gsoSize) }
            XCTAssertEqual(counts, expected, "ids \(ids) DF \(df)")
            XCTAssertEqual(c.counters.packets, 4)
            // What the kernel cuts from a merge (id + k) is what went in, where
            // the id matters (no DF).
            if !df {
                var back: [[UInt8]] = []
                for (h, p) in out {
                    guard h.gsoType != 0 else { back.append(p); continue }
                    try p.withUnsafeBytes { q in
                        let plan = try XCTUnwrap(TSOPlan(packet: q, header: h, maxSegment: 65423))
                        var o = [UInt8](repeating: 0, count: 65536)
                        for k in 0..<plan.count {
                            back.append(Array(o[0..<o.withUnsafeMutableBytes { plan.write(segment: k, of: q, to: $0.baseAddress!) }]))
                        }
                    }
                }
                XCTAssertEqual(back.map { [$0[4], $0[5]] }, input.map { [$0[4], $0[5]] }, "ids \(ids)")
            }
        }
        // UDP the same (Linux checks it in udp_gro_receive_segment since 6.10).
        for (ids, df, expected) in [([UInt16](arrayLiteral: 5, 5, 5), false, 3), ([5, 6, 7], false, 1), ([5, 5, 5], true, 1)] {
            let (c, read) = makeCoalescer()
            feed(c, Arena(), ids.enumerated().map { i, id in
                Self.udpPacket(payload: Self.randomBytes(300, seed: UInt64(i)), id: id, df: df)
            })
            XCTAssertEqual(read().count, expected, "UDP ids \(ids) DF \(df)")
        }
    }

    func testConsecutiveSegmentsBecomeOneSuperPacket() {
        for v6 in [false, true] {
            let (c, read) = makeCoalescer()
            let arena = Arena()
            var flags = [UInt8](repeating: 0x10, count: 5)
            flags[4] = 0x18  // PSH on the last
            let input = segments(v6: v6, sizes: [1300, 1300, 1300, 1300, 700], flags: flags)
            feed(c, arena, input)
            let out = read()
            XCTAssertEqual(out.count, 1)
            let (h, p) = unwrap(out[0])
            let ihl = v6 ? 40 : 20
            XCTAssertEqual(h.gsoType, v6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4)
            XCTAssertEqual(h.gsoSize, 1300)
            XCTAssertEqual(Int(h.headerLength), ihl + 32)
            XCTAssertEqual(Int(h.checksumStart), ihl)
            XCTAssertEqual(h.checksumOffset, 16)
            XCTAssertTrue(Self.transportChecksumOK(p))
            if !v6 { XCTAssertTrue(Self.ipv4HeaderOK(p)) }
            XCTAssertEqual(p[ihl + 13], 0x18, "PSH carried over")
            XCTAssertEqual(Self.be32(p, ihl + 4), 1000)
            XCTAssertEqual(Array(p[(ihl + 32)...]), input.flatMap { $0[(ihl + 32)...] })
            XCTAssertEqual(c.counters.packets, 5)
            XCTAssertEqual(c.counters.mergedWrites, 1)
            XCTAssertEqual(c.counters.bytes, UInt64(input.map(\.count).reduce(0, +)))
        }
    }

    func testWhatMustNotMergeIsWrittenAsItCame() {
        let (c, read) = makeCoalescer()
        let arena = Arena()
        var input = segments(sizes: [1000, 1000])
        input.append(Self.tcpPacket(seq: 1000 + 2000 + 5, payload: [1, 2, 3]))  // a gap
        var corrupt = segments(seq: 5000, sizes: [1000, 1000, 1000])
        corrupt[1][60] ^= 0x01  // bad TCP checksum in the middle
        input += corrupt
        input.append(Self.tcpPacket(seq: 9000, payload: [], flags: 0x12))  // SYN-ACK
        input.append([0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2, 8, 0, 0, 0, 0, 0, 0, 0])  // ICMP
        feed(c, arena, input)
        let out = read().map(unwrap)
        // In order: [0,1] merged (flushed by the gap), the gap packet alone
        // (flushed by 5000, which does not follow it), 5000 alone (flushed by
        // the corrupt one), the corrupt one alone and unchanged, 7000 alone
        // (flushed by the SYN-ACK of its flow), the SYN-ACK, the ICMP packet.
        let bodies = out.map { $0.1 }
        XCTAssertEqual(out.count, 7, "\(out.map { ($0.0.gsoType, $0.1.count) })")
        guard out.count == 7 else { return }
        XCTAssertEqual(out[0].0.gsoType, VirtioNetHeader.gsoTCPv4)
        XCTAssertEqual(Array(bodies[0][52...]), Array(input[0][52...]) + Array(input[1][52...]))
        XCTAssertEqual(Array(bodies[1...]), Array(input[2...]), "the rest reach the kernel as they came")
        XCTAssertFalse(Self.transportChecksumOK(bodies[3]), "the corrupt segment is still corrupt")
        for (h, _) in out.dropFirst() { XCTAssertEqual(h, VirtioNetHeader(), "plain packets: zero header") }
        XCTAssertEqual(c.counters.packets, 8)
        XCTAssertEqual(c.counters.mergedPackets, 2)
    }

    func testInterleavedFlowsMergeSeparately() {
        let (c, read) = makeCoalescer()
        let arena = Arena()
        let a = segments(seq: 100, sizes: [500, 500, 500], srcPort: 1)
        let b = segments(seq: 900, sizes: [400, 400], srcPort: 2)
        feed(c, arena, [a[0], b[0], a[1], b[1], a[2]])
        let out = read().map(unwrap)
        XCTAssertEqual(out.count, 2)
        XCTAssertEqual(out[0].1.count, 52 + 1500)
        XCTAssertEqual(out[1].1.count, 52 + 800)
        XCTAssertTrue(out.allSatisfy { Self.transportChecksumOK($0.1) })
    }

    func testHeaderDifferencesStopTheMerge() {
        let (c, read) = makeCoalescer()
        let arena = Arena()
        let base = segments(sizes: [600])[0]
        func next(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
            var p = Self.tcpPacket(seq: 1600, payload: Self.randomBytes(600, seed: 9), id: 1)  // the next id
            change(&p)
            // Re-checksum after the change so only the header difference matters.
            p[36] = 0; p[37] = 0; p[10] = 0; p[11] = 0
            let ipc = ~Self.referenceSum(Array(p[0..<20]))
            p[10] = UInt8(ipc >> 8); p[11] = UInt8(ipc & 0xff)
            let len = p.count - 20
            let c = ~Self.referenceSum(Array(p[12..<20]) + [0, 6, UInt8(len >> 8), UInt8(len & 0xff)] + Array(p[20...]))
            p[36] = UInt8(c >> 8); p[37] = UInt8(c & 0xff)
            return p
        }
        let changes: [(String, (inout [UInt8]) -> Void)] = [
            ("same", { _ in }),
            ("ack", { $0[31] ^= 1 }), ("window", { $0[35] ^= 1 }), ("timestamp option", { $0[47] ^= 1 }),
            ("ttl", { $0[8] ^= 1 }), ("tos", { $0[1] ^= 4 }), ("no DF", { $0[6] = 0 }),
        ]
        for (name, change) in changes {
            feed(c, arena, [base, next(change)])
            let n = read().count
            XCTAssertEqual(n, name == "same" ? 1 : 2, name)
        }
    }

    func testEqualUDPDatagramsMergeAndTheKernelCanCutThemBack() throws {
        for v6 in [false, true] {
            let (c, read) = makeCoalescer()
            let arena = Arena()
            let sizes = [1000, 1000, 1000, 400, 1000]  // the short one ends the run
            let input = sizes.enumerated().map { Self.udpPacket(v6: v6, payload: Self.randomBytes($1, seed: UInt64($0))) }
            feed(c, arena, input)
            let out = read().map(unwrap)
            XCTAssertEqual(out.count, 2)
            let (h, p) = out[0]
            let ihl = v6 ? 40 : 20
            XCTAssertEqual(h.gsoType, VirtioNetHeader.gsoUDPL4)
            XCTAssertEqual(h.gsoSize, 1000)
            XCTAssertEqual(h.checksumOffset, 6)
            XCTAssertEqual(Int(p[ihl + 4]) << 8 | Int(p[ihl + 5]), 8 + 3400, "UDP length of the whole")
            XCTAssertTrue(Self.transportChecksumOK(p, proto: 17))
            // Cutting it as the kernel would gives back the datagrams exactly.
            let back = try p.withUnsafeBytes { q in
                let plan = try XCTUnwrap(TSOPlan(packet: q, header: h, maxSegment: 65423))
                var o = [UInt8](repeating: 0, count: 65536)
                return (0..<plan.count).map { k in
                    Array(o[0..<o.withUnsafeMutableBytes { plan.write(segment: k, of: q, to: $0.baseAddress!) }])
                }
            }
            XCTAssertEqual(back.map { Array($0[(ihl + 8)...]) }, input[0..<4].map { Array($0[(ihl + 8)...]) })
            XCTAssertEqual(out[1].1, input[4], "after the short one, alone")
        }
    }

    func testUDPIsNotMergedWithoutUSOOrWithoutAChecksum() {
        let input = (0..<3).map { Self.udpPacket(payload: Self.randomBytes(500, seed: UInt64($0))) }
        let (c, read) = makeCoalescer(mergeUDP: false)
        feed(c, Arena(), input)
        XCTAssertEqual(read().count, 3, "device without USO: one write each")
        let (c2, read2) = makeCoalescer()
        let bare = (0..<3).map { Self.udpPacket(payload: Self.randomBytes(500, seed: UInt64($0)), zeroChecksum: true) }
        feed(c2, Arena(), bare)
        XCTAssertEqual(read2().map { $0.count - 10 }, bare.map(\.count), "IPv4 UDP without checksum: nothing to verify, not merged")
        let (c3, read3) = makeCoalescer()
        var mixed = input
        mixed[1] = Self.udpPacket(payload: Self.randomBytes(500, seed: 1), ttl: 63)
        feed(c3, Arena(), mixed)
        XCTAssertEqual(read3().count, 3, "different TTLs")
    }

    func testALongRunIsCutAtSixtyFourSegments() {
        let (c, read) = makeCoalescer()
        let arena = Arena()
        feed(c, arena, segments(sizes: [Int](repeating: 100, count: 70)))
        let out = read().map(unwrap)
        XCTAssertEqual(out.map { $0.1.count }, [52 + 6400, 52 + 600])
        XCTAssertEqual(c.counters.packets, 70)
    }
}
