import Glibc

/// What the coalescer needs to know of an IP packet carrying TCP, read in
/// place. `isTCP` is false for anything else, including IP fragments and
/// packets whose length fields disagree with their size.
struct TCPSegmentView {
    static let none = TCPSegmentView()
    static let flagACK: UInt8 = 0x10

    private(set) var isTCP = false
    private(set) var ipv6 = false
    private(set) var ipHeaderLength = 0
    private(set) var tcpHeaderLength = 0
    private(set) var payloadLength = 0
    private(set) var sequence: UInt32 = 0
    private(set) var flags: UInt8 = 0
    /// An ACK segment with data and no other flag than PSH, with no IPv4
    /// options and no reserved TCP bits: what may be merged.
    private(set) var isMergeable = false

    var headerLength: Int { ipHeaderLength + tcpHeaderLength }
    var push: Bool { flags & TSOPlan.flagPSH != 0 }

    private init() {}

    init(_ p: UnsafeRawPointer, length: Int) {
        guard length >= 20 else { return }
        let version = p.load(as: UInt8.self) >> 4
        let ipLength: Int
        if version == 4 {
            ipLength = Int(p.load(as: UInt8.self) & 0x0f) * 4
            let total = Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            let fragment = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
            guard ipLength >= 20, total == length, fragment & 0x3fff == 0,
                  p.load(fromByteOffset: 9, as: UInt8.self) == TSOPlan.tcp else { return }
        } else if version == 6 {
            ipLength = 40
            guard length >= 40,
                  Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))) + 40 == length,
                  p.load(fromByteOffset: 6, as: UInt8.self) == TSOPlan.tcp else { return }
            ipv6 = true
        } else {
            return
        }
        guard length >= ipLength + 20 else { return }
        let offsetByte = p.load(fromByteOffset: ipLength + 12, as: UInt8.self)
        let tcpLength = Int(offsetByte >> 4) * 4
        guard tcpLength >= 20, ipLength + tcpLength <= length else { return }
        isTCP = true
        ipHeaderLength = ipLength
        tcpHeaderLength = tcpLength
        payloadLength = length - ipLength - tcpLength
        sequence = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: ipLength + 4, as: UInt32.self))
        flags = p.load(fromByteOffset: ipLength + 13, as: UInt8.self)
        isMergeable = payloadLength > 0 && flags & ~(Self.flagACK | TSOPlan.flagPSH) == 0
            && flags & Self.flagACK != 0 && offsetByte & 0x0f == 0 && (ipv6 || ipLength == 20)
    }

    /// Same IP version, addresses and ports as `head` (at `q`).
    func sameFlow(_ p: UnsafeRawPointer, as q: UnsafeRawPointer, head: TCPSegmentView) -> Bool {
        guard ipv6 == head.ipv6 else { return false }
        let addresses = ipv6 ? memcmp(p + 8, q + 8, 32) : memcmp(p + 12, q + 12, 8)
        return addresses == 0 && memcmp(p + ipHeaderLength, q + head.ipHeaderLength, 4) == 0
    }

    /// The fields that must match for `p` to continue the flow whose first
    /// packet is at `q` (same header lengths already checked): IPv4 TOS,
    /// DF and TTL, or IPv6 traffic class, flow label and hop limit; TCP
    /// ACK number, data offset, window, urgent pointer and options.
    func sameHeaderFields(_ p: UnsafeRawPointer, as q: UnsafeRawPointer) -> Bool {
        if ipv6 {
            guard memcmp(p, q, 4) == 0, p.load(fromByteOffset: 7, as: UInt8.self) == q.load(fromByteOffset: 7, as: UInt8.self)
            else { return false }
        } else {
            guard p.load(fromByteOffset: 1, as: UInt8.self) == q.load(fromByteOffset: 1, as: UInt8.self),
                  memcmp(p + 6, q + 6, 3) == 0 else { return false }  // flags/fragment, TTL
        }
        let t = ipHeaderLength
        return memcmp(p + t + 8, q + t + 8, 5) == 0  // ACK number, data offset
            && memcmp(p + t + 14, q + t + 14, 2) == 0  // window
            && memcmp(p + t + 18, q + t + 18, tcpHeaderLength - 18) == 0  // urgent pointer, options
    }

    /// The IPv4 header checksum (if any) and the TCP checksum are right.
    func checksumsValid(_ p: UnsafeRawPointer) -> Bool {
        if !ipv6 && Checksum.fold(Checksum.add(0, p, ipHeaderLength)) != 0xffff { return false }
        let tcpLength = tcpHeaderLength + payloadLength
        let sum = Checksum.add(Checksum.pseudoHeader(ip: p, ipv6: ipv6, protocol: TSOPlan.tcp, length: tcpLength),
                               p + ipHeaderLength, tcpLength)
        return Checksum.fold(sum) == 0xffff
    }
}
