import SqutunSystem
import Glibc
import Shared

/// The device side of the data path: where the packets to seal come from
/// and where the opened ones go. One payload per `read` (an implementation
/// that reads super-packets splits them and hands out one piece per call),
/// payloads given to `write` may be merged until `flush`. The data path is
/// generic over it (specialised, no dynamic dispatch per packet):
/// `PlainTunIO` and `OffloadTunIO` for the kernel's tun device, an
/// in-memory fake in the tests.
public protocol DeviceIO: AnyObject {
    /// Bytes in front of every payload given to `write` that the I/O may
    /// overwrite (a virtio header goes there). The data path checks at
    /// start that the cipher suite leaves that many.
    var headroom: Int { get }
    /// Bytes of link-layer header in front of the IP packet in what is read
    /// and written: 0 for a tun device; a TAP device's Ethernet header, 14.
    var linkLayerOffset: Int { get }
    /// What the device took and what it refused, read and could not read.
    /// Received packets are counted here and nowhere else.
    var counters: DeviceCounters { get }
    /// Whether the status shows offloads: "off", "tcp" or "tcp udp".
    var offloadName: String { get }

    /// The next payload into `room`. `.payload(n)` may exceed `room.count`
    /// (a packet too long to carry, cut to the room): the caller drops it.
    func read(into room: UnsafeMutableRawBufferPointer) -> DeviceRead
    /// Whether a split super-packet still has pieces for `read` (no poll
    /// wakeup will come for them).
    var hasPending: Bool { get }
    /// One opened payload, `headroom` writable bytes in front of it. It
    /// must stay in place until `flush`.
    func write(_ payload: UnsafeMutableRawPointer, length: Int)
    /// Writes whatever `write` held back. Called before the buffers the
    /// payloads are in are reused.
    func flush()
}

/// The result of one `DeviceIO.read`.
public enum DeviceRead: Equatable {
    case payload(Int)
    /// Nothing waiting (a read error is counted and ends the round as well).
    case drained
    /// Something read that carried nothing to send (counted by the I/O).
    case skipped
    /// The device is gone: the data path ends.
    case gone(String)
}

/// The device I/O's counters, one set whatever the implementation.
public struct DeviceCounters: Equatable {
    /// Opened payloads the device took (rx-packets, rx-bytes) and refused.
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    public var failedPackets: UInt64 = 0
    /// Super-packets written, and the packets in them.
    public var mergedWrites: UInt64 = 0
    public var mergedPackets: UInt64 = 0
    /// Reads that failed (not counting "nothing waiting").
    public var readErrors: UInt64 = 0
    /// Super-packets read and the payloads cut from them; reads whose
    /// offload header made no sense.
    public var splitReads: UInt64 = 0
    public var splitSegments: UInt64 = 0
    public var offloadErrors: UInt64 = 0

    public init() {}

    @inline(__always)
    mutating func wrote(_ n: Int, ok: Bool) {
        if ok {
            packets &+= 1
            bytes &+= UInt64(n)
        } else {
            failedPackets &+= 1
        }
    }
}

/// Sorts a failed tun read: the device gone, or a counted error.
@inline(__always)
func tunReadFailure(_ error: Errno, interface: String, counters: inout DeviceCounters) -> DeviceRead {
    if error.rawValue == EBADFD || error.rawValue == ENODEV || error.rawValue == EIO {
        return .gone("tun device \(interface) is gone (\(error))")
    }
    counters.readErrors &+= 1
    return .drained
}

/// A tun device without offloads: one IP packet per read and per write; or
/// a TAP device (always without offloads): one Ethernet frame.
public final class PlainTunIO: DeviceIO {
    public let tun: Tun
    public private(set) var counters = DeviceCounters()
    public var headroom: Int { 0 }
    public let linkLayerOffset: Int
    public var offloadName: String { "off" }
    public var hasPending: Bool { false }

    public init(tun: consuming Tun) {
        linkLayerOffset = tun.isTap ? MTU.ethernetHeaderLength : 0
        self.tun = tun
    }

    @inline(__always)
    public func read(into room: UnsafeMutableRawBufferPointer) -> DeviceRead {
        do {
            guard let n = try tun.read(into: room) else { return .drained }
            return n == 0 ? .skipped : .payload(n)
        } catch {
            return tunReadFailure(error, interface: tun.name, counters: &counters)
        }
    }

    @inline(__always)
    public func write(_ payload: UnsafeMutableRawPointer, length: Int) {
        let ok = (try? tun.write(UnsafeRawBufferPointer(start: payload, count: length))) == true
        counters.wrote(length, ok: ok)
    }

    public func flush() {}
}

/// A tun device with offloads (IFF_VNET_HDR): each read is a virtio header
/// and a packet whose checksum may still be ours to finish, or a TCP/UDP
/// super-packet, handed out one packet per `read` (TSOPlan: split on
/// read); the written packets of one batch are merged where Linux's GRO
/// would (Coalescer: merge on write).
public final class OffloadTunIO: DeviceIO {
    public let tun: Tun
    private let coalescer: Coalescer
    /// Where a (super-)packet is read, behind its virtio header.
    private let buffer: UnsafeMutableRawBufferPointer
    /// The super-packet being handed out, and its next segment.
    private var plan: TSOPlan?
    private var nextSegment = 0
    private var readCounters = DeviceCounters()
    private let maxPayload: Int

    public var headroom: Int { Coalescer.requiredHeadroom }
    public var linkLayerOffset: Int { 0 }
    public var offloadName: String { tun.udpOffload ? "tcp udp" : "tcp" }
    public var hasPending: Bool { plan != nil }

    /// `maxPayload`: no read payload is longer (the cipher suite's);
    /// `headroom`: what the suite leaves in front of opened payloads.
    public init(tun: consuming Tun, maxPayload: Int, headroom: Int) {
        precondition(tun.vnetHeader)
        // The coalescer writes through a view of the fd this I/O owns.
        coalescer = Coalescer(fd: tun.fd, mergeUDP: tun.udpOffload, headroom: headroom)
        self.tun = tun
        self.maxPayload = maxPayload
        buffer = .allocate(byteCount: VirtioNetHeader.size + 65536, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// Written packets are counted by the coalescer, read ones here: each
    /// counter has one writer.
    public var counters: DeviceCounters {
        var c = coalescer.counters
        c.readErrors = readCounters.readErrors
        c.splitReads = readCounters.splitReads
        c.splitSegments = readCounters.splitSegments
        c.offloadErrors = readCounters.offloadErrors
        return c
    }

    public func read(into room: UnsafeMutableRawBufferPointer) -> DeviceRead {
        if let plan {
            return .payload(cut(plan, into: room))
        }
        let n: Int
        do {
            guard let got = try tun.read(into: buffer) else { return .drained }
            n = got
        } catch {
            return tunReadFailure(error, interface: tun.name, counters: &readCounters)
        }
        guard n > VirtioNetHeader.size else { return .skipped }
        let header = VirtioNetHeader(loading: buffer.baseAddress!)
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[VirtioNetHeader.size..<n])
        if header.gsoType == VirtioNetHeader.gsoNone {
            // Too long to carry: the caller drops it by its length.
            if packet.count <= maxPayload {
                if header.flags & VirtioNetHeader.needsChecksum != 0
                    && !TSOPlan.completeChecksum(packet, header: header) {
                    readCounters.offloadErrors &+= 1
                    return .skipped
                }
            }
            room.baseAddress!.copyMemory(from: packet.baseAddress!, byteCount: min(packet.count, room.count))
            return .payload(packet.count)
        }
        guard let cutting = TSOPlan(packet: UnsafeRawBufferPointer(packet), header: header,
                                    maxSegment: maxPayload) else {
            readCounters.offloadErrors &+= 1
            return .skipped
        }
        readCounters.splitReads &+= 1
        readCounters.splitSegments &+= UInt64(cutting.count)
        nextSegment = 0
        return .payload(cut(cutting, into: room))
    }

    @inline(__always)
    private func cut(_ plan: TSOPlan, into room: UnsafeMutableRawBufferPointer) -> Int {
        let packet = UnsafeRawBufferPointer(rebasing: buffer[VirtioNetHeader.size...])
        let length = plan.write(segment: nextSegment, of: packet, to: room.baseAddress!)
        nextSegment += 1
        self.plan = nextSegment < plan.count ? plan : nil
        return length
    }

    @inline(__always)
    public func write(_ payload: UnsafeMutableRawPointer, length: Int) {
        coalescer.add(payload, length: length)
    }

    public func flush() { coalescer.flush() }
}
