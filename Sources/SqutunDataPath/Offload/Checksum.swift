import CShim

/// The Internet checksum over native-order words (see squtun_csum_add):
/// what is summed and what is stored are both in memory order, so no byte
/// swapping happens anywhere.
public enum Checksum {
    @inline(__always)
    public static func add(_ acc: UInt64, _ p: UnsafeRawPointer, _ count: Int) -> UInt64 {
        squtun_csum_add(acc, p, count)
    }

    @inline(__always)
    public static func fold(_ acc: UInt64) -> UInt16 { squtun_csum_fold(acc) }

    /// A big-endian 16-bit value as it adds to a native-order sum.
    @inline(__always)
    public static func word(_ value: UInt16) -> UInt64 { UInt64(value.bigEndian) }

    /// The TCP/UDP pseudo-header (RFC 793 / RFC 8200 §8.1) of an IP packet
    /// at `ip`: both addresses, the protocol and the transport length.
    /// The addresses' sum is folded before the small words are added: an
    /// accumulator can be as large as 2^64 - 1 (all-ones addresses: the
    /// fuzzer found it), and a plain addition would drop the carry.
    @inline(__always)
    public static func pseudoHeader(ip: UnsafeRawPointer, ipv6: Bool, protocol proto: UInt8, length: Int) -> UInt64 {
        let addresses = fold(ipv6 ? add(0, ip + 8, 32) : add(0, ip + 12, 8))
        return UInt64(addresses) + word(UInt16(proto)) + word(UInt16(truncatingIfNeeded: length))
            + word(UInt16(truncatingIfNeeded: length >> 16))
    }

    /// The IPv4 header checksum, computed afresh into bytes 10–11.
    @inline(__always)
    public static func setIPv4Header(_ ip: UnsafeMutableRawPointer, headerLength: Int) {
        ip.storeBytes(of: 0, toByteOffset: 10, as: UInt16.self)
        ip.storeBytes(of: ~fold(add(0, ip, headerLength)), toByteOffset: 10, as: UInt16.self)
    }
}
