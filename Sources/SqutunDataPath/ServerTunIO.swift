import SqutunSystem
import Shared

/// A server's client's device: its tun once the root helper made it, or
/// none yet (or no more). Payloads opened for a client without a tun are
/// counted (`noTun`) and dropped: the first authenticated datagram is what
/// makes the worker ask the helper for the tun.
public final class ServerTunIO: DeviceIO {
    private var plain: PlainTunIO?
    private var before = DeviceCounters()
    /// Opened payloads dropped because the client had no tun.
    public private(set) var noTun: UInt64 = 0

    public init() {}

    public var interface: String? { plain?.tun.name }
    public var hasTun: Bool { plain != nil }
    public var headroom: Int { 0 }
    public var linkLayerOffset: Int { 0 }
    public var offloadName: String { "off" }
    public var hasPending: Bool { false }
    /// Over every tun the client had.
    public var counters: DeviceCounters {
        guard let c = plain?.counters else { return before }
        var sum = before
        sum.packets &+= c.packets
        sum.bytes &+= c.bytes
        sum.failedPackets &+= c.failedPackets
        sum.readErrors &+= c.readErrors
        return sum
    }

    /// The tun fd the helper passed (the previous one, if any, is closed).
    public func attach(_ tun: consuming Tun) {
        detach()
        plain = PlainTunIO(tun: tun)
    }

    /// Closes the tun: the device goes (it is not persistent).
    public func detach() {
        before = counters
        plain = nil
    }

    @inline(__always)
    public func read(into room: UnsafeMutableRawBufferPointer) -> DeviceRead {
        plain?.read(into: room) ?? .drained
    }

    @inline(__always)
    public func write(_ payload: UnsafeMutableRawPointer, length: Int) {
        if let plain { plain.write(payload, length: length) } else { noTun &+= 1 }
    }

    public func flush() {}
}

/// The server's one UDP socket, shared by its clients' devices (each
/// device is generic over a `DatagramIO` it holds; they hold this handle).
public final class SharedSocket: DatagramIO {
    public let socket: UDPSocket

    public init(_ socket: consuming UDPSocket) { self.socket = socket }

    @inline(__always)
    public func receiveBatch(_ batch: DatagramBatch) throws(Errno) -> Int { try socket.receiveBatch(batch) }

    @inline(__always)
    public func sendBatch(_ batch: DatagramBatch, count: Int, to peer: SocketAddress, gso: Bool) -> BatchSend {
        socket.sendBatch(batch, count: count, to: peer, gso: gso)
    }

    @inline(__always)
    public func send(_ bytes: UnsafeRawBufferPointer, to peer: SocketAddress) throws(Errno) -> Bool {
        try socket.send(bytes, to: peer)
    }
}
