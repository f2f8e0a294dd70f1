import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Room for a batch of datagrams, allocated once: `capacity` slots of
/// `slotSize` bytes, their lengths and their senders. `UDPSocket`'s
/// `receiveBatch`/`sendBatch` fill and drain it with one recvmmsg/sendmmsg
/// call; the data path seals and opens in place in the slots.
public final class DatagramBatch {
    public let capacity: Int
    public let slotSize: Int
    public let base: UnsafeMutableRawPointer
    public let lengths: UnsafeMutablePointer<UInt32>
    public let addresses: UnsafeMutablePointer<sockaddr_storage>
    public let addressLengths: UnsafeMutablePointer<UInt32>
    /// Received with UDP_GRO: the segment size when slot i holds several
    /// coalesced datagrams of that size (the last may be shorter), else 0.
    public let gsoSizes: UnsafeMutablePointer<UInt32>

    /// Virtual size capacity × slotSize; only the pages datagrams touch
    /// become resident.
    public init(capacity: Int = Int(SQUTUN_BATCH_MAX), slotSize: Int = 65536) {
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
    public func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * slotSize, count: slotSize)
    }

    /// The datagram in slot `i` (its received or sealed length).
    @inline(__always)
    public func datagram(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * slotSize, count: Int(lengths[i]))
    }

    /// Who sent the datagram in slot `i` (unmapped: plain IPv4 for IPv4 peers).
    @inline(__always)
    public func sender(_ i: Int) -> SocketAddress {
        SocketAddress(copying: addresses + i, length: socklen_t(addressLengths[i]))?.unmapped ?? SocketAddress()
    }
}

extension UDPSocket {
    /// GSO limits: the kernel's UDP_MAX_SEGMENTS, and a super-datagram
    /// that fits an IPv6 UDP payload with room to spare.
    public static let maxGSOSegments = 64
    public static let maxGSOBytes = 65_000

    /// Receives up to `batch.capacity` datagrams in one call (with UDP_GRO,
    /// a slot may hold several: see `gsoSizes`); 0 when none waits.
    @inline(__always)
    public func receiveBatch(_ batch: DatagramBatch) throws(Errno) -> Int {
        let n = squtun_recv_batch(fd.rawValue, batch.base, batch.slotSize, UInt32(batch.capacity),
                                  batch.lengths, batch.addresses, batch.addressLengths, batch.gsoSizes)
        if n < 0 {
            let e = Errno.current
            if e.isWouldBlock { return 0 }
            throw e
        }
        return Int(n)
    }

    /// Sends slots 0..<count to `peer`, in order. With `gso`, runs of
    /// equal-sized datagrams leave as one UDP_SEGMENT super-datagram each
    /// (one trip through the stack instead of one per datagram); the rest,
    /// and everything after a run the kernel refused as GSO, by sendmmsg.
    /// Never throws: the result says exactly how many went out (the first
    /// `sent` slots) and why the others did not, so that datagrams sent
    /// before an error are still counted as sent.
    public func sendBatch(_ batch: DatagramBatch, count: Int, to peer: SocketAddress, gso: Bool) -> BatchSend {
        guard count > 0 else { return BatchSend(sent: 0) }
        let target: SocketAddress
        do {
            target = try sendAddress(for: peer)
        } catch {
            return BatchSend(sent: 0, failure: error)
        }
        var result = BatchSend(sent: 0)
        while gso && result.sent < count {
            let start = result.sent
            let end = Self.gsoRun(batch, from: start, count: count)
            if end - start == 1 { break }  // nothing to coalesce here: sendmmsg the rest
            let r = target.withSockaddr { sa, len in
                squtun_send_gso(fd.rawValue, batch.base, batch.slotSize, UInt32(start), UInt32(end - start),
                                batch.lengths, sa, UInt32(len), batch.lengths[start])
            }
            if r < 0 {
                let e = Errno.current
                if Self.refusesGSO(e) {
                    result.gsoRefused = true
                    break
                }
                result.failure = e
                return result
            }
            result.sent = end
            result.gsoSends += 1
        }
        guard result.sent < count else { return result }
        let start = result.sent
        let n = target.withSockaddr { sa, len in
            squtun_send_batch(fd.rawValue, batch.base + start * batch.slotSize, batch.slotSize, UInt32(count - start),
                              batch.lengths + start, sa, UInt32(len))
        }
        if n < 0 {
            result.failure = Errno.current
        } else {
            // errno, read before anything else can change it: why the rest stayed.
            if start + Int(n) < count { result.failure = Errno.current }
            result.sent = start + Int(n)
        }
        return result
    }

    /// The errors with which a kernel refuses a UDP_SEGMENT send that
    /// plain sends may survive: no GSO in this kernel (ENOPROTOOPT,
    /// EOPNOTSUPP), no checksum offload on the route's device (EIO), a
    /// segment larger than the path MTU allows (EINVAL, which an ICMP "frag
    /// needed" can cause for a while; EMSGSIZE in some kernels). All are
    /// worth a later retry; meanwhile the datagrams go one by one, and
    /// those that really cannot go fail there, each counted.
    public static func refusesGSO(_ e: Errno) -> Bool {
        e.rawValue == EINVAL || e.rawValue == EOPNOTSUPP || e.rawValue == EIO || e.rawValue == ENOPROTOOPT
            || e.rawValue == EMSGSIZE
    }

    /// The end of the GSO run starting at `start`: following datagrams of
    /// the same size, and one shorter one to close it, within the limits.
    @inline(__always)
    public static func gsoRun(_ batch: DatagramBatch, from start: Int, count: Int) -> Int {
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

/// What one `sendBatch` did.
public struct BatchSend: Equatable {
    /// Datagrams that went out: the batch's first `sent` slots.
    public var sent: Int
    /// Why the remaining ones did not; nil when all went. EAGAIN/ENOBUFS
    /// (`isBufferFull`) is a full socket buffer, which drops as a full
    /// queue drops; anything else is about the path or the address (no
    /// route, link down, a peer of the wrong family …).
    public var failure: Errno? = nil
    /// UDP GSO super-datagrams sent, and whether the kernel refused one
    /// (its datagrams then went one by one).
    public var gsoSends = 0
    public var gsoRefused = false

    /// For other senders of batches (the data path's test network).
    public init(sent: Int, failure: Errno? = nil, gsoSends: Int = 0, gsoRefused: Bool = false) {
        self.sent = sent
        self.failure = failure
        self.gsoSends = gsoSends
        self.gsoRefused = gsoRefused
    }
}

extension Errno {
    /// A full socket buffer: the datagram is dropped, the path is fine.
    public var isBufferFull: Bool { isWouldBlock || rawValue == ENOBUFS }
}
