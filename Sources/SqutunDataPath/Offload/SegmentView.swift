import Shared
import SqutunSystem
import Glibc

/// What the coalescer needs to know of an IP packet carrying TCP or UDP,
/// read in place. `isSegment` is false for anything else, including IP
/// fragments, IPv6 extension headers and packets whose length fields
/// disagree with their size.
public struct SegmentView: Sendable {
    public static let none = SegmentView()
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let flagFIN: UInt8 = 0x01
    public static let flagPSH: UInt8 = 0x08
    public static let flagACK: UInt8 = 0x10
    public static let flagCWR: UInt8 = 0x80

    public private(set) var isSegment = false
    public private(set) var ipv6 = false
    public private(set) var proto: UInt8 = 0
    public private(set) var ipHeaderLength = 0
    /// TCP header with options, or the 8-byte UDP header.
    public private(set) var transportHeaderLength = 0
    public private(set) var payloadLength = 0
    /// IPv4 only: the identification field, and whether DF is set.
    public private(set) var ipID: UInt16 = 0
    public private(set) var dontFragment = false
    /// TCP only.
    public private(set) var sequence: UInt32 = 0
    public private(set) var flags: UInt8 = 0
    /// What may be merged: data, no IPv4 options; for TCP an ACK segment
    /// with no other flag than PSH and no reserved bits; for UDP over IPv4
    /// a checksum (zero means none, and there would be nothing to verify).
    public private(set) var isMergeable = false

    public var isUDP: Bool { proto == Self.udp }
    public var headerLength: Int { ipHeaderLength + transportHeaderLength }
    public var push: Bool { flags & Self.flagPSH != 0 }
    /// Where the transport checksum sits, from the transport header.
    public var checksumOffset: Int { isUDP ? 6 : 16 }

    private init() {}

    public init(_ p: UnsafeRawPointer, length: Int) {
        guard length >= 20 else { return }
        let version = p.load(as: UInt8.self) >> 4
        let ipLength: Int
        if version == 4 {
            ipLength = Int(p.load(as: UInt8.self) & 0x0f) * 4
            let total = Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            let fragment = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
            guard ipLength >= 20, total == length, fragment & 0x3fff == 0 else { return }
            proto = p.load(fromByteOffset: 9, as: UInt8.self)
            ipID = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
            dontFragment = fragment & 0x4000 != 0
        } else if version == 6 {
            ipLength = 40
            guard length >= 40,
                  Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))) + 40 == length
            else { return }
            proto = p.load(fromByteOffset: 6, as: UInt8.self)
            ipv6 = true
        } else {
            return
        }
        if proto == Self.tcp {
            guard length >= ipLength + 20 else { return }
            let offsetByte = p.load(fromByteOffset: ipLength + 12, as: UInt8.self)
            let tcpLength = Int(offsetByte >> 4) * 4
            guard tcpLength >= 20, ipLength + tcpLength <= length else { return }
            transportHeaderLength = tcpLength
            sequence = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: ipLength + 4, as: UInt32.self))
            flags = p.load(fromByteOffset: ipLength + 13, as: UInt8.self)
            isMergeable = flags & ~(Self.flagACK | Self.flagPSH) == 0 && flags & Self.flagACK != 0
                && offsetByte & 0x0f == 0
        } else if proto == Self.udp {
            guard length >= ipLength + 8,
                  Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: ipLength + 4, as: UInt16.self)))
                    == length - ipLength else { return }
            transportHeaderLength = 8
            isMergeable = ipv6 || p.loadUnaligned(fromByteOffset: ipLength + 6, as: UInt16.self) != 0
        } else {
            return
        }
        isSegment = true
        ipHeaderLength = ipLength
        payloadLength = length - ipLength - transportHeaderLength
        isMergeable = isMergeable && payloadLength > 0 && (ipv6 || ipLength == 20)
    }

    /// Same IP version, protocol, addresses and ports as `head` (at `q`).
    public func sameFlow(_ p: UnsafeRawPointer, as q: UnsafeRawPointer, head: SegmentView) -> Bool {
        guard ipv6 == head.ipv6, proto == head.proto else { return false }
        let addresses = ipv6 ? memcmp(p + 8, q + 8, 32) : memcmp(p + 12, q + 12, 8)
        return addresses == 0 && memcmp(p + ipHeaderLength, q + head.ipHeaderLength, 4) == 0
    }

    /// The fields that must match for `p` to continue the flow whose first
    /// packet is at `q` (same header lengths already checked): IPv4 TOS,
    /// DF and TTL, or IPv6 traffic class, flow label and hop limit; for TCP
    /// also the ACK number, data offset, window, urgent pointer and options.
    public func sameHeaderFields(_ p: UnsafeRawPointer, as q: UnsafeRawPointer) -> Bool {
        if ipv6 {
            guard memcmp(p, q, 4) == 0, p.load(fromByteOffset: 7, as: UInt8.self) == q.load(fromByteOffset: 7, as: UInt8.self)
            else { return false }
        } else {
            guard p.load(fromByteOffset: 1, as: UInt8.self) == q.load(fromByteOffset: 1, as: UInt8.self),
                  memcmp(p + 6, q + 6, 3) == 0 else { return false }  // flags/fragment, TTL
        }
        if isUDP { return true }
        let t = ipHeaderLength
        return memcmp(p + t + 8, q + t + 8, 5) == 0  // ACK number, data offset
            && memcmp(p + t + 14, q + t + 14, 2) == 0  // window
            && memcmp(p + t + 18, q + t + 18, transportHeaderLength - 18) == 0  // urgent pointer, options
    }

    /// The IPv4 header checksum (if any) and the transport checksum are right.
    public func checksumsValid(_ p: UnsafeRawPointer) -> Bool {
        if !ipv6 && Checksum.fold(Checksum.add(0, p, ipHeaderLength)) != 0xffff { return false }
        let length = transportHeaderLength + payloadLength
        let sum = Checksum.add(Checksum.pseudoHeader(ip: p, ipv6: ipv6, protocol: proto, length: length),
                               p + ipHeaderLength, length)
        return Checksum.fold(sum) == 0xffff
    }
}
