import SqutunSystem
import Shared

/// The network side of the data path: batches of datagrams in and out of
/// one socket. `UDPSocket` is the real one; the tests connect in-memory
/// sockets through a fake network. The data path is generic over it
/// (specialised: no dynamic dispatch per batch or per datagram). Not
/// necessarily copyable: the device holds the socket itself, the owner of
/// its fd, rather than a reference to a box around it.
public protocol DatagramIO: ~Copyable {
    /// Fills `batch` from slot 0 (data, lengths, senders, UDP GRO segment
    /// sizes); the number of slots filled, 0 when nothing waits. A thrown
    /// error (an ICMP error surfacing) ends the round.
    func receiveBatch(_ batch: DatagramBatch) throws(Errno) -> Int
    /// Sends slots 0..<count to `peer`, with UDP GSO for runs of equal
    /// sizes if `gso`; says how many went and why the rest did not.
    func sendBatch(_ batch: DatagramBatch, count: Int, to peer: SocketAddress, gso: Bool) -> BatchSend
    /// One datagram; false if the socket buffer is full.
    func send(_ bytes: UnsafeRawBufferPointer, to peer: SocketAddress) throws(Errno) -> Bool
}

extension UDPSocket: DatagramIO {}
