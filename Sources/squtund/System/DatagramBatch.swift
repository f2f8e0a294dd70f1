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
    }

    deinit {
        base.deallocate()
        lengths.deallocate()
        addresses.deallocate()
        addressLengths.deallocate()
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
    /// Receives up to `batch.capacity` datagrams in one call; 0 when none waits.
    @inline(__always)
    func receiveBatch(_ batch: DatagramBatch) throws(Errno) -> Int {
        let n = squtun_recv_batch(fd.rawValue, batch.base, batch.slotSize, UInt32(batch.capacity),
                                  batch.lengths, batch.addresses, batch.addressLengths)
        if n < 0 {
            let e = Errno.current
            if e.isWouldBlock { return 0 }
            throw e
        }
        return Int(n)
    }

    /// Sends slots 0..<count to `peer` in one call (retrying what a partial
    /// send left); returns how many went out — fewer when the socket buffer
    /// was full (the rest are dropped, as a full queue drops).
    @inline(__always)
    func sendBatch(_ batch: DatagramBatch, count: Int, to peer: SocketAddress) throws(Errno) -> Int {
        guard count > 0 else { return 0 }
        let target = try sendAddress(for: peer)
        let n = target.withSockaddr { sa, len in
            squtun_send_batch(fd.rawValue, batch.base, batch.slotSize, UInt32(count), batch.lengths,
                              sa, UInt32(len))
        }
        if n < 0 {
            let e = Errno.current
            if e.isWouldBlock || e.rawValue == ENOBUFS { return 0 }
            throw e
        }
        return Int(n)
    }
}
