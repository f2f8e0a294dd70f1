import SqutunSystem
import Shared

/// A server's client's device: its tun once the root helper made it, or
/// none yet (or no more). Payloads opened for a client without a tun are
/// counted (`noTun`) and dropped: the first authenticated datagram is what
/// makes the worker ask the helper for the tun. The client's own UDP
/// socket comes and goes with the tun.
public final class ServerTunIO: DeviceIO {
    private var plain: PlainTunIO?
    /// The client's own socket (its datagrams in), while it has a tun.
    public private(set) var socket: ClientSocket?
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

    /// The tun and socket the helper passed (the previous ones, if any, are closed).
    public func attach(_ tun: consuming Tun, socket: ClientSocket?) {
        detach()
        plain = PlainTunIO(tun: tun)
        self.socket = socket
    }

    /// Closes the socket alone (the shared one serves the client).
    public func dropSocket() { socket = nil }

    /// Closes the tun (the device goes: it is not persistent) and the socket.
    public func detach() {
        before = counters
        plain = nil
        socket = nil
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

/// A UDP socket held by reference, as a `DatagramIO`: the server's
/// sockets, the shared one and each client's own, which devices and the
/// server's loop hold together. The forwarding methods are final, so a
/// device generic over a subclass calls them directly.
public class SocketHandle: DatagramIO {
    public let socket: UDPSocket

    public init(_ socket: consuming UDPSocket) { self.socket = socket }

    @inline(__always)
    public final func receiveBatch(_ batch: DatagramBatch) throws(Errno) -> Int { try socket.receiveBatch(batch) }

    @inline(__always)
    public final func sendBatch(_ batch: DatagramBatch, count: Int, to peer: SocketAddress, gso: Bool) -> BatchSend {
        socket.sendBatch(batch, count: count, to: peer, gso: gso)
    }

    @inline(__always)
    public final func send(_ bytes: UnsafeRawBufferPointer, to peer: SocketAddress) throws(Errno) -> Bool {
        try socket.send(bytes, to: peer)
    }
}

/// A server client's own UDP socket: the root helper bound it to the
/// server's address and port and connected it to the client, so the kernel
/// queues that address's datagrams here, in their own buffer: a client
/// flooding fills its own socket, not the one everyone else shares. Only
/// receiving uses it (sending stays on the shared socket); it follows the
/// client when the client roams (a datagram from its new address arrives
/// on the shared socket, and authenticates).
public final class ClientSocket: SocketHandle {
    /// Where it is connected to (nil: not yet).
    public private(set) var peer: SocketAddress?

    /// Connects it to `address` (a no-op if it is there): false if the kernel refused.
    public func follow(_ address: SocketAddress) -> Bool {
        if peer == address { return true }
        do throws(Errno) { try socket.connect(to: address) } catch { return false }
        peer = address
        return true
    }
}

/// The server's one shared UDP socket: its clients' devices send on it,
/// and it receives what no client's own socket takes.
public final class SharedSocket: SocketHandle {}
