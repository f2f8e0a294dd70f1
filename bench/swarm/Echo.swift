import SqutunDataPath

/// The IPv4 ICMP echo requests a simulated client sends inside its tunnel,
/// and the replies it recognises. The request's payload starts with its
/// send time, which the reply carries back: the round trip needs no table.
enum Echo {
    static let payloadLength = 56  // ping's default
    static let packetLength = 20 + 8 + payloadLength

    /// Writes an echo request `from` → `to` (host order) at `p`; returns its length.
    static func writeRequest(_ p: UnsafeMutableRawPointer, from: UInt32, to: UInt32, id: UInt16, sequence: UInt16,
                             sentNs: UInt64) -> Int {
        p.initializeMemory(as: UInt8.self, repeating: 0, count: packetLength)
        p.storeBytes(of: 0x45, as: UInt8.self)  // version 4, 20-byte header
        store16(p, 2, UInt16(packetLength))
        store16(p, 6, 0x4000)  // don't fragment
        p.storeBytes(of: 64, toByteOffset: 8, as: UInt8.self)  // TTL
        p.storeBytes(of: 1, toByteOffset: 9, as: UInt8.self)  // ICMP
        store32(p, 12, from)
        store32(p, 16, to)
        Checksum.setIPv4Header(p, headerLength: 20)
        let icmp = p + 20
        icmp.storeBytes(of: 8, as: UInt8.self)  // echo request
        store16(icmp, 4, id)
        store16(icmp, 6, sequence)
        icmp.storeBytes(of: sentNs.bigEndian, toByteOffset: 8, as: UInt64.self)
        icmp.storeBytes(of: ~Checksum.fold(Checksum.add(0, icmp, 8 + payloadLength)), toByteOffset: 2, as: UInt16.self)
        return packetLength
    }

    /// The send time an echo reply to request `id` sent to `to` carries
    /// back; nil if the packet at `p` is not one.
    static func replySentNs(_ p: UnsafeRawPointer, length: Int, id: UInt16, to client: UInt32) -> UInt64? {
        guard length >= packetLength, p.load(as: UInt8.self) == 0x45, p.load(fromByteOffset: 9, as: UInt8.self) == 1,
              load32(p, 16) == client else { return nil }
        let icmp = p + 20
        guard icmp.load(as: UInt8.self) == 0, load16(icmp, 4) == id else { return nil }
        return UInt64(bigEndian: icmp.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    private static func store16(_ p: UnsafeMutableRawPointer, _ at: Int, _ v: UInt16) {
        p.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt16.self)
    }
    private static func store32(_ p: UnsafeMutableRawPointer, _ at: Int, _ v: UInt32) {
        p.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt32.self)
    }
    private static func load16(_ p: UnsafeRawPointer, _ at: Int) -> UInt16 {
        UInt16(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }
    private static func load32(_ p: UnsafeRawPointer, _ at: Int) -> UInt32 {
        UInt32(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }
}
