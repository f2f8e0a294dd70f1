import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Room for a batch of datagrams, allocated once: `capacity` slots of
/// `slotSize` bytes, their lengths and their senders. `UDPSocket`'s
/// `receiveBatch`/`sendBatch` fill and drain it with one recvmmsg/sendmmsg
/// call; the data path seals and opens in place in the slots.
final class DatagramBatch {
    let capacity: Int
    let slotSize: Int
    let base: UnsafeMutableRawPointer
    let lengths: UnsafeMutablePointer<UInt32>
    let addresses: UnsafeMutablePointer<sockaddr_storage>
    let addressLengths: UnsafeMutablePointer<UInt32>
    /// Received with UDP_GRO: the segment size when slot i holds several
    /// coalesced datagrams of that size (the last may be shorter), else 0.
    let gsoSizes: UnsafeMutablePointer<UInt32>

    /// Virtual size capacity × slotSize; only the pages datagrams touch
    /// become resident.
    init(capacity: Int = Int(SQUTUN_BATCH_MAX), slotSize: Int = 65536) {
        precondition(capacity >= 1 && capacity <= Int(SQUTUN_BATCH_MAX))
        self.capacity = capacity
        self.slotSize = slotSize
        base = .allocate(byteCount: capacity * slotSize, alignment: 64)
        lengths = .allocate(capacity: capacity)
        lengths.initialize(repeating: 0, count: capacity)
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: sockaddr_storage(), count: capacity)
        addressLengths = .allocate(capacity: capacity)
        addressLengths.initialize(repeating: 0, count: capacity)
        gsoSizes = .allocate(capacity: capacity)
        gsoSizes.initialize(repeating: 0, count: capacity)
    }

    deinit {
        base.deallocate()
        lengths.deallocate()
        addresses.deallocate()
        addressLengths.deallocate()
        gsoSizes.deallocate()
    }

    /// Slot `i`, all of it.
    @inline(__always)
    func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * slotSize, count: slotSize)
    }

    /// The datagram in slot `i` (its received or sealed length).
    @inline(__always)
    func datagram(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * slotSize, count: Int(lengths[i]))
    }

    /// Who sent the datagram in slot `i` (unmapped: plain IPv4 for IPv4 peers).
    @inline(__always)
    func sender(_ i: Int) -> SocketAddress {
        SocketAddress(copying: addresses + i, length: socklen_t(addressLengths[i]))?.unmapped ?? SocketAddress()
    }
}

extension UDPSocket {
    /// GSO limits: the kernel's UDP_MAX_SEGMENTS, and a super-datagram
    /// that fits an IPv6 UDP payload with room to spare.
    static let maxGSOSegments = 64
    static let maxGSOBytes = 65_000

    /// Receives up to `batch.capacity` datagrams in one call (with UDP_GRO,
    /// a slot may hold several: see `gsoSizes`); 0 when none waits.
    @inline(__always)
    func receiveBatch(_ batch: DatagramBatch) throws(Errno) -> Int {
        let n = squtun_recv_batch(fd.rawValue, batch.base, batch.slotSize, UInt32(batch.capacity),
                                  batch.lengths, batch.addresses, batch.addressLengths, batch.gsoSizes)
        if n < 0 {
            let e = Errno.current
            if e.isWouldBlock { return 0 }
            throw e
        }
        return Int(n)
    }

    /// Sends slots 0..<count to `peer`; returns how many went out — fewer
    /// when the socket buffer was full (the rest are dropped, as a full
    /// queue drops). With `gso`, runs of equal-sized datagrams leave as one
    /// UDP_SEGMENT super-datagram each (one trip through the stack instead
    /// of one per datagram); a kernel that refuses GSO turns `gso` off and
    /// the batch goes out by sendmmsg.
    func sendBatch(_ batch: DatagramBatch, count: Int, to peer: SocketAddress, gso: inout Bool) throws(Errno) -> Int {
        guard count > 0 else { return 0 }
        let target = try sendAddress(for: peer)
        var sent = 0
        while gso && sent < count {
            let end = Self.gsoRun(batch, from: sent, count: count)
            if end - sent == 1 { break }  // nothing to coalesce here: sendmmsg the rest
            let r = target.withSockaddr { sa, len in
                squtun_send_gso(fd.rawValue, batch.base, batch.slotSize, UInt32(sent), UInt32(end - sent),
                                batch.lengths, sa, UInt32(len), batch.lengths[sent])
            }
            if r < 0 {
                let e = Errno.current
                if e.isWouldBlock || e.rawValue == ENOBUFS { return sent }
                if e.rawValue == EINVAL || e.rawValue == EOPNOTSUPP || e.rawValue == EIO || e.rawValue == ENOPROTOOPT {
                    gso = false
                    break
                }
                throw e
            }
            sent = end
        }
        guard sent < count else { return sent }
        let n = target.withSockaddr { sa, len in
            squtun_send_batch(fd.rawValue, batch.base + sent * batch.slotSize, batch.slotSize, UInt32(count - sent),
                              batch.lengths + sent, sa, UInt32(len))
        }
        if n < 0 {
            let e = Errno.current
            if e.isWouldBlock || e.rawValue == ENOBUFS { return sent }
            throw e
        }
        return sent + Int(n)
    }

    /// The end of the GSO run starting at `start`: following datagrams of
    /// the same size, and one shorter one to close it, within the limits.
    @inline(__always)
    static func gsoRun(_ batch: DatagramBatch, from start: Int, count: Int) -> Int {
        let segment = batch.lengths[start]
        var total = Int(segment)
        var end = start + 1
        while end < count, end - start < maxGSOSegments {
            let next = batch.lengths[end]
            if next > segment || total + Int(next) > maxGSOBytes { break }
            total += Int(next)
            end += 1
            if next < segment { break }  // only the last may be shorter
        }
        return end
    }
}
