import SqutunSystem
import SqutunDataPath
import Shared
#if canImport(Glibc)
import Glibc
#endif

// In-memory stand-ins for the tun device, the UDP sockets between two
// tunnel ends and the clocks, so that two data paths talk in one test
// process, deterministically. Everything else on the path is real:
// Device, Peer, Sealer, Opener (OpenSSL), DatagramBatch.

/// A hand-moved clock for both of the data path's clocks.
final class FakeClock {
    var wallMs: UInt64
    var monotonicMs: UInt64

    init(wallMs: UInt64 = 1_800_000_000_000, monotonicMs: UInt64 = 5_000_000) {
        self.wallMs = wallMs
        self.monotonicMs = monotonicMs
    }

    func advance(ms: UInt64) {
        wallMs += ms
        monotonicMs += ms
    }

    var seam: DataPathClock { DataPathClock(wallMs: { self.wallMs }, monotonicMs: { self.monotonicMs }) }
}

/// The network between fake sockets, addressed by SocketAddress. What is
/// sent is delivered at once to the socket at the destination, unless a
/// rule says otherwise: drop, hold back (then release in either order),
/// duplicate, or rewrite the sender (a NAT rebinding: roaming).
final class FakeNetwork {
    struct Datagram {
        var bytes: [UInt8]
        var from: SocketAddress
        var to: SocketAddress
    }

    private var sockets: [SocketAddress: FakeSocket] = [:]
    /// Every datagram sent, as it left its socket (for replays and forgeries).
    private(set) var sent: [Datagram] = []
    /// Send attempts, failed ones included.
    private(set) var attempts = 0
    /// Makes every send fail with this error (no route, link down …).
    var sendFailure: Errno?
    /// Datagrams from an address appear from another (NAT rebinding).
    var rewriteSender: [SocketAddress: SocketAddress] = [:]
    var drop: (Datagram) -> Bool = { _ in false }
    var duplicate = false
    /// Held datagrams stay here until `release`.
    var hold = false
    private(set) var held: [Datagram] = []

    func attach(_ socket: FakeSocket, at address: SocketAddress) { sockets[address] = socket }

    func transmit(_ bytes: UnsafeRawBufferPointer, from: SocketAddress, to: SocketAddress) throws(Errno) {
        attempts += 1
        if let sendFailure { throw sendFailure }
        let d = Datagram(bytes: Array(bytes), from: rewriteSender[from] ?? from, to: to)
        sent.append(d)
        if drop(d) { return }
        if hold {
            held.append(d)
            return
        }
        inject(d)
        if duplicate { inject(d) }
    }

    /// Puts a datagram in the inbox of the socket at `to`, as it is.
    func inject(_ d: Datagram) { sockets[d.to]?.inbox.append((d.bytes, d.from)) }

    func inject(_ bytes: [UInt8], from: SocketAddress, to: SocketAddress) {
        inject(Datagram(bytes: bytes, from: from, to: to))
    }

    func release(reversed: Bool) {
        let out = reversed ? held.reversed() : held
        held = []
        for d in out { inject(d) }
    }
}

/// One UDP socket on the fake network. With `gro`, consecutive
/// equal-sized datagrams from one sender arrive in one slot, as UDP GRO
/// hands them over (the last may be shorter).
final class FakeSocket: DatagramIO {
    let address: SocketAddress
    let network: FakeNetwork
    var inbox: [([UInt8], SocketAddress)] = []
    var gro = false
    /// Slots handed over holding more than one datagram.
    private(set) var coalescedSlots = 0

    init(_ address: SocketAddress, on network: FakeNetwork) {
        self.address = address
        self.network = network
        network.attach(self, at: address)
    }

    func receiveBatch(_ batch: DatagramBatch) throws(Errno) -> Int {
        var n = 0
        while n < batch.capacity, !inbox.isEmpty {
            var (bytes, from) = inbox.removeFirst()
            var segment = 0
            if gro {
                while let next = inbox.first, next.1 == from, bytes.count + next.0.count <= batch.slotSize {
                    let size = segment == 0 ? bytes.count : segment
                    guard next.0.count <= size else { break }
                    segment = size
                    bytes += next.0
                    inbox.removeFirst()
                    if next.0.count < size { break }  // only the last may be shorter
                }
            }
            let length = min(bytes.count, batch.slotSize)
            bytes.withUnsafeBytes { batch.slot(n).baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: length) }
            batch.lengths[n] = UInt32(length)
            batch.gsoSizes[n] = UInt32(segment)
            if segment > 0 { coalescedSlots += 1 }
            from.withSockaddr { sa, len in
                UnsafeMutableRawPointer(batch.addresses + n).copyMemory(from: sa, byteCount: Int(len))
                batch.addressLengths[n] = UInt32(len)
            }
            n += 1
        }
        return n
    }

    func sendBatch(_ batch: DatagramBatch, count: Int, to peer: SocketAddress, gso: Bool) -> BatchSend {
        for i in 0..<count {
            do {
                try network.transmit(UnsafeRawBufferPointer(batch.datagram(i)), from: address, to: peer)
            } catch {
                return BatchSend(sent: i, failure: error)
            }
        }
        return BatchSend(sent: count)
    }

    func send(_ bytes: UnsafeRawBufferPointer, to peer: SocketAddress) throws(Errno) -> Bool {
        try network.transmit(bytes, from: address, to: peer)
        return true
    }
}

/// A device: packets queued for the data path to read, and what it wrote.
/// Written payloads are only copied out at `flush`, as a merging device
/// reads them there: a data path that reused its buffers before flushing
/// would show here as corrupted packets.
final class FakeDevice: DeviceIO {
    var toRead: [[UInt8]] = []
    private(set) var written: [[UInt8]] = []
    private var pending: [(UnsafeMutableRawPointer, Int)] = []
    private(set) var counters = DeviceCounters()
    /// Writes the device refuses (counted as failed).
    var refuseWrites = false
    var gone: String?
    let headroom = 0
    var linkLayerOffset = 0
    let offloadName = "off"
    /// Reads of `superSize` queued packets at a time, handed out one per
    /// `read` as a splitting device I/O does (the rest is pending).
    var superSize = 1
    private var pieces: [[UInt8]] = []
    var hasPending: Bool { !pieces.isEmpty }

    func read(into room: UnsafeMutableRawBufferPointer) -> DeviceRead {
        if let gone { return .gone(gone) }
        if pieces.isEmpty {
            guard !toRead.isEmpty else { return .drained }
            pieces = Array(toRead.prefix(superSize))
            toRead.removeFirst(pieces.count)
        }
        let p = pieces.removeFirst()
        p.withUnsafeBytes { room.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: min(p.count, room.count)) }
        return .payload(p.count)
    }

    func write(_ payload: UnsafeMutableRawPointer, length: Int) {
        pending.append((payload, length))
    }

    func flush() {
        for (p, n) in pending {
            if refuseWrites {
                counters.failedPackets += 1
                continue
            }
            written.append(Array(UnsafeRawBufferPointer(start: p, count: n)))
            counters.packets += 1
            counters.bytes += UInt64(n)
        }
        pending = []
    }
}
