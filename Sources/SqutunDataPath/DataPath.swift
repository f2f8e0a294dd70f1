import SqutunSystem
import Glibc
import CShim
import Shared
import squtun_crypto

// The data path, run by the unprivileged worker (or by the single process
// of an unprivileged start). One thread, one loop:
//
//  1. ppoll-style wait: tun, UDP, the wake pipe of the signal handler, the
//     helper channel, the status listener; timeout = next keepalive due.
//  2. UDP → open (every check of PROTOCOL.md §6, in order) → tun; 16 slots
//     per recvmmsg, each one datagram or up to 64 coalesced by UDP GRO
//     (split first). An authenticated datagram from a new address moves
//     the peer there. With tun offloads, consecutive TCP segments (and
//     equal-sized UDP datagrams) of a flow in one batch go to the tun as
//     one super-packet (Coalescer).
//  3. tun → seal → UDP to the current peer, up to 64 packets per batch,
//     runs of equal size as one UDP GSO send (counted as no-peer if there
//     is no peer yet). With tun offloads, a TCP or UDP super-packet read
//     from the tun is first cut into its packets (TSOPlan), each sealed
//     alone.
//  4. Keepalive: nothing sent for -a seconds → an empty keepalive. A
//     failed one is retried from the attempt, backed off
//     (KeepaliveSchedule): a lasting send error never spins the loop.
//  5. Status connection → the counters as text; channel hang-up → exit;
//     SIGTERM/SIGINT → exit; SIGHUP → forget a learnt peer; SIGUSR1 → log counters.
//
// Buffers are allocated once; nothing on the per-packet path allocates.

/// How the data path ended.
public enum DataPathExit: Equatable {
    case signal(Int32)
    case channelClosed
    case tunGone(String)
    case fatal(String)
}

public final class DataPath {
    /// The layout of the datagrams the sealer and opener make: where
    /// payloads go in a slot, how long one may be, what is free before it.
    typealias Suite = Sealer.Suite

    public struct Settings {
        public var interface: String
        public var keepaliveMs: UInt64
        /// From -p: SIGHUP returns to it.
        public var configuredPeer: SocketAddress?
        /// Besides root, who may read the status (the single-process mode's
        /// user); taken before seccomp, which forbids getuid.
        public var statusUID: UInt32 = 0

        public init(interface: String, keepaliveMs: UInt64, configuredPeer: SocketAddress?, statusUID: UInt32 = 0) {
            self.interface = interface
            self.keepaliveMs = keepaliveMs
            self.configuredPeer = configuredPeer
            self.statusUID = statusUID
        }
    }

    /// Batches handled per wakeup before looking at the other fds (fairness).
    public static let batchesPerWakeup = 4

    private let settings: Settings
    private let tun: Tun
    private let udp: UDPSocket
    private let wake: FileDescriptor
    private let channel: FileDescriptor?
    private let control: FileDescriptor?
    private let sealer: Sealer
    private let opener: Opener
    private let log: (Int32, String) -> Void
    /// Log lines this process could not get out (the logger lives above
    /// the data path: it is told how to ask).
    private let logLinesDropped: () -> UInt64

    public private(set) var peer: SocketAddress?
    public private(set) var stats = Stats()
    private var keepalive: KeepaliveSchedule
    /// UDP GSO for runs of equal-sized datagrams, paused while the kernel refuses it.
    private var gso = GSOSchedule()
    /// Whether sends to the peer fail: logged when that changes.
    private var health = SendHealth()
    /// At most one line a minute about tun packets too long to send.
    private var oversizeLog = LogLimit(intervalMs: 60_000)
    /// One batch per direction: slots big enough for the largest datagram.
    /// Received slots fill up to 64 KiB each with UDP GRO (a slot holds up
    /// to 64 coalesced datagrams), so 16 of them take up to ~1000 datagrams
    /// per call while keeping the resident set 3 MiB below 64 slots'.
    private let tx = DatagramBatch()
    private let rx = DatagramBatch(capacity: 16)
    /// Payload length of each sealed tx slot (for the byte counter).
    private let txPayload: UnsafeMutablePointer<UInt32>
    /// With tun offloads: where a (super-)packet is read, behind its
    /// virtio header, before it is cut into tx slots; and the merger of
    /// the tun writes.
    private let tunBuffer: UnsafeMutableRawBufferPointer?
    private let coalescer: Coalescer?
    private let pollSet: UnsafeMutablePointer<pollfd>
    private let pollCount: Int

    public init(settings: Settings, tun: Tun, udp: UDPSocket, wake: FileDescriptor, channel: FileDescriptor?,
         control: FileDescriptor?, sealer: Sealer, opener: Opener, log: @escaping (Int32, String) -> Void,
         logLinesDropped: @escaping () -> UInt64) {
        self.settings = settings
        self.tun = tun
        self.udp = udp
        self.wake = wake
        self.channel = channel
        self.control = control
        self.sealer = sealer
        self.opener = opener
        self.log = log
        self.logLinesDropped = logLinesDropped
        peer = settings.configuredPeer
        keepalive = KeepaliveSchedule(intervalMs: settings.keepaliveMs)
        txPayload = .allocate(capacity: tx.capacity)
        txPayload.initialize(repeating: 0, count: tx.capacity)
        if tun.vnetHeader {
            tunBuffer = .allocate(byteCount: VirtioNetHeader.size + 65536, alignment: 64)
            // The coalescer writes into the bytes in front of each opened
            // payload: the suite says how many there are (checked there).
            coalescer = Coalescer(fd: tun.fd, mergeUDP: tun.udpOffload, headroom: Opener.Suite.headroom)
        } else {
            tunBuffer = nil
            coalescer = nil
        }
        pollSet = .allocate(capacity: 5)
        let fds = [udp.fd, tun.fd, wake, channel, control].compactMap { $0 }
        for (i, fd) in fds.enumerated() { pollSet[i] = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0) }
        pollCount = fds.count
    }

    deinit {
        pollSet.deallocate()
        txPayload.deallocate()
        tunBuffer?.deallocate()
    }

    /// Runs until a signal, the helper, or a fault ends it.
    public func run() -> DataPathExit {
        // A restarted peer learns our new session at once.
        sendKeepaliveIfDue(now: MonotonicClock.nowMs())
        while true {
            // 1. Wait.
            let timeout = pollTimeout(now: MonotonicClock.nowMs())
            let n = poll(pollSet, nfds_t(pollCount), timeout)
            if n < 0 && errno != EINTR { return .fatal("poll: \(String(cString: strerror(errno)))") }
            // 5. Signals first: SIGTERM must win over a flood.
            if let end = handleSignals() { return end }
            if n > 0 {
                for i in 0..<pollCount where pollSet[i].revents != 0 {
                    let fd = pollSet[i].fd
                    let ev = pollSet[i].revents
                    pollSet[i].revents = 0
                    if fd == udp.fd.rawValue {
                        receiveFromUDP()  // 2.
                    } else if fd == tun.fd.rawValue {
                        if ev & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                            return .tunGone("tun device \(settings.interface) is gone")
                        }
                        if let end = tunBuffer.map(sendFromOffloadTun) ?? sendFromTun() { return end }  // 3.
                    } else if fd == wake.rawValue {
                        wake.drain()
                    } else if let channel, fd == channel.rawValue {
                        // The helper sends nothing after setup: data or hang-up both end us.
                        return .channelClosed
                    } else if let control, fd == control.rawValue {
                        serveStatus(control)
                    }
                }
            }
            sendKeepaliveIfDue(now: MonotonicClock.nowMs())  // 4.
        }
    }

    // MARK: 2. UDP → tun

    private func receiveFromUDP() {
        for _ in 0..<Self.batchesPerWakeup {
            let count: Int
            do {
                count = try udp.receiveBatch(rx)
            } catch {
                return  // ICMP errors (ECONNREFUSED …) surface here; nothing to do
            }
            // One clock reading per batch, for every datagram in it.
            let now = WallClock.nowMs()
            let monotonicNow = MonotonicClock.nowMs()
            opener.clockRead(wallMs: now, monotonicMs: monotonicNow)
            for i in 0..<count {
                let slot = rx.datagram(i)
                let from = rx.sender(i)
                let segment = Int(rx.gsoSizes[i])
                if segment == 0 || slot.count <= segment {
                    openDatagram(slot, from: from, nowMs: now, monotonicNow: monotonicNow)
                    continue
                }
                // Coalesced by UDP GRO: datagrams of `segment` bytes, the last maybe shorter.
                var offset = 0
                while offset < slot.count {
                    let end = min(offset + segment, slot.count)
                    openDatagram(UnsafeMutableRawBufferPointer(rebasing: slot[offset..<end]), from: from,
                                 nowMs: now, monotonicNow: monotonicNow)
                    offset = end
                }
            }
            coalescer?.flush()  // before recvmmsg reuses the slots it points into
            if count < rx.capacity { return }
        }
    }

    @inline(__always)
    private func openDatagram(_ packet: UnsafeMutableRawBufferPointer, from: SocketAddress, nowMs: UInt64,
                              monotonicNow: UInt64) {
        let fromPeer = peer == from
        switch opener.open(packet, fromPeer: fromPeer, nowMs: nowMs, monotonicMs: monotonicNow) {
        case .drop(let reason):
            stats.drop(reason)
            return
        case .data(let length):
            if let coalescer {
                coalescer.add(packet.baseAddress! + Suite.payloadStart, length: length)
                break
            }
            let payload = UnsafeRawBufferPointer(
                start: packet.baseAddress! + Suite.payloadStart, count: length)
            if (try? tun.write(payload)) == true {
                stats.rxPackets &+= 1
                stats.rxBytes &+= UInt64(length)
            } else {
                stats.tunWriteErrors &+= 1
            }
        case .keepalive:
            stats.keepalivesReceived &+= 1
        }
        stats.lastAuthenticatedMs = monotonicNow
        if !fromPeer { movePeer(to: from) }
    }

    private func movePeer(to address: SocketAddress) {
        let old = peer
        peer = address
        stats.peerChanges &+= 1
        keepalive.peerChanged(nowMs: MonotonicClock.nowMs())
        log(LOG_NOTICE, old == nil ? "peer is \(address)" : "peer moved from \(old!) to \(address)")
    }

    // MARK: 3. tun → UDP

    private func sendFromTun() -> DataPathExit? {
        for _ in 0..<Self.batchesPerWakeup {
            // Read and seal up to a batch, then send it in one call.
            var sealed = 0
            var drained = false
            let now = WallClock.nowMs()
            filling: while sealed < tx.capacity {
                // Room for more than the largest payload: a longer packet
                // (a tun MTU above it) must be seen as such, not read cut
                // to a length that fits (the kernel returns what it copied,
                // or on some kernels the full length) and sent truncated.
                let slot = tx.slot(sealed)
                let room = UnsafeMutableRawBufferPointer(rebasing: slot[Suite.payloadStart...])
                let length: Int
                switch readTun(into: room) {
                case .packet(let n): length = n
                case .drained:
                    drained = true
                    break filling
                case .gone(let end):
                    flush(sealed)
                    return end
                }
                if length == 0 { continue }
                if length > Suite.maxPayloadLength {
                    dropOversize(length, packet: UnsafeRawBufferPointer(room))
                    continue
                }
                if peer == nil {
                    stats.noPeer &+= 1
                    continue
                }
                if sealSlot(sealed, payloadLength: length, nowMs: now) { sealed += 1 }
            }
            flush(sealed)
            if drained { return nil }
        }
        return nil
    }

    /// The same with tun offloads: each read is a virtio header and a packet
    /// whose checksum may still be ours to finish, or a TCP/UDP super-packet
    /// to cut into packets; the batch is sent whenever it is full.
    private func sendFromOffloadTun(_ buffer: UnsafeMutableRawBufferPointer) -> DataPathExit? {
        var sealed = 0
        var handled = 0  // packets this wakeup (fairness)
        let now = WallClock.nowMs()
        reading: while handled < tx.capacity * Self.batchesPerWakeup {
            let n: Int
            switch readTun(into: buffer) {
            case .packet(let got): n = got
            case .drained: break reading
            case .gone(let end):
                flush(sealed)
                return end
            }
            guard n > VirtioNetHeader.size else { continue }
            let header = VirtioNetHeader(loading: buffer.baseAddress!)
            let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[VirtioNetHeader.size..<n])
            if header.gsoType == VirtioNetHeader.gsoNone {
                handled += 1
                if packet.count > Suite.maxPayloadLength {
                    dropOversize(packet.count, packet: UnsafeRawBufferPointer(packet))
                    continue
                }
                if header.flags & VirtioNetHeader.needsChecksum != 0
                    && !TSOPlan.completeChecksum(packet, header: header) {
                    stats.offloadErrors &+= 1
                    continue
                }
                if peer == nil {
                    stats.noPeer &+= 1
                    continue
                }
                (tx.slot(sealed).baseAddress! + Suite.payloadStart)
                    .copyMemory(from: packet.baseAddress!, byteCount: packet.count)
                if sealSlot(sealed, payloadLength: packet.count, nowMs: now) { sealed += 1 }
                if sealed == tx.capacity { flush(sealed); sealed = 0 }
                continue
            }
            guard let plan = TSOPlan(packet: UnsafeRawBufferPointer(packet), header: header,
                                     maxSegment: Suite.maxPayloadLength) else {
                stats.offloadErrors &+= 1
                continue
            }
            handled += plan.count
            stats.gsoReads &+= 1
            stats.gsoSegments &+= UInt64(plan.count)
            if peer == nil {
                stats.noPeer &+= UInt64(plan.count)
                continue
            }
            for k in 0..<plan.count {
                let length = plan.write(segment: k, of: UnsafeRawBufferPointer(packet),
                                        to: tx.slot(sealed).baseAddress! + Suite.payloadStart)
                if sealSlot(sealed, payloadLength: length, nowMs: now) { sealed += 1 }
                if sealed == tx.capacity { flush(sealed); sealed = 0 }
            }
        }
        flush(sealed)
        return nil
    }

    private enum TunRead {
        case packet(Int)
        /// Nothing waiting, or a read error (counted).
        case drained
        case gone(DataPathExit)
    }

    /// One tun read, its errors sorted: the device gone ends the data path.
    @inline(__always)
    private func readTun(into buffer: UnsafeMutableRawBufferPointer) -> TunRead {
        do {
            guard let n = try tun.read(into: buffer) else { return .drained }
            return .packet(n)
        } catch {
            if error.rawValue == EBADFD || error.rawValue == ENODEV || error.rawValue == EIO {
                return .gone(.tunGone("tun device \(settings.interface) is gone (\(error))"))
            }
            stats.tunReadErrors &+= 1
            return .drained
        }
    }

    /// Seals the payload in tx slot `i`; false (counted) if it could not be.
    @inline(__always)
    private func sealSlot(_ i: Int, payloadLength: Int, nowMs: UInt64) -> Bool {
        guard let n = try? sealer.seal(type: .data, payloadLength: payloadLength, packet: tx.slot(i), nowMs: nowMs)
        else {
            stats.sendErrors &+= 1
            return false
        }
        tx.lengths[i] = UInt32(n)
        txPayload[i] = UInt32(payloadLength)
        return true
    }

    /// Sends tx slots 0..<count to the peer; counts what went out and what did not.
    private func flush(_ count: Int) {
        guard count > 0, let peer else { return }
        let now = MonotonicClock.nowMs()
        let result = udp.sendBatch(tx, count: count, to: peer, gso: gso.allowed(nowMs: now))
        gso.update(result, nowMs: now)
        stats.txPackets &+= UInt64(result.sent)
        for i in 0..<result.sent { stats.txBytes &+= UInt64(txPayload[i]) }
        stats.sendErrors &+= UInt64(count - result.sent)
        if result.sent > 0 { keepalive.sent(nowMs: now) }
        recordSend(sent: result.sent, attempted: count, failure: result.failure, to: peer)
    }

    /// Logs when sending to the peer starts failing and when it works
    /// again; the datagrams themselves are counted by the caller.
    @inline(__always)
    private func recordSend(sent: Int, attempted: Int, failure: Errno?, to peer: SocketAddress) {
        switch health.record(sent: sent, attempted: attempted, failure: failure) {
        case .none: break
        case .startedFailing(let e):
            log(LOG_WARNING, "cannot send to peer \(peer): \(e) (counted as send-errors; logged again when it works)")
        case .recovered(let lost):
            log(LOG_NOTICE, "sending to peer \(peer) works again (\(lost) datagrams could not be sent)")
        }
    }

    /// A tun packet longer than any datagram can carry: dropped, counted,
    /// and said at most once a minute (with how many since the last line).
    /// Its length for the line comes from its IP header: the read may have
    /// been cut to the buffer.
    private func dropOversize(_ read: Int, packet: UnsafeRawBufferPointer) {
        stats.oversize &+= 1
        guard let more = oversizeLog.allow(nowMs: MonotonicClock.nowMs()) else { return }
        var length = read
        if packet.count >= 6 {
            let field = Int(packet[2]) << 8 | Int(packet[3])
            switch packet[0] >> 4 {
            case 4: length = max(read, field)
            case 6: length = max(read, 40 + (Int(packet[4]) << 8 | Int(packet[5])))
            default: break
            }
        }
        log(LOG_WARNING, "dropped a \(length)-byte packet read from \(settings.interface): longer than the "
            + "largest payload squtun can send (\(Suite.maxPayloadLength) bytes)"
            + (more > 0 ? ", and \(more) more since the last such line" : "")
            + "; set the MTU of \(settings.interface) to \(Suite.maxPayloadLength) or less (tx-oversize)")
    }

    // MARK: 4. Keepalive

    private func sendKeepaliveIfDue(now: UInt64) {
        guard let peer, keepalive.isDue(nowMs: now) else { return }
        let slot = tx.slot(0)
        guard let n = try? sealer.seal(type: .keepalive, payloadLength: 0, packet: slot, nowMs: WallClock.nowMs())
        else {
            stats.sendErrors &+= 1
            keepalive.keepaliveFailed(nowMs: now)
            return
        }
        var failure: Errno?
        do {
            if try !udp.send(UnsafeRawBufferPointer(rebasing: slot[0..<n]), to: peer) { failure = .wouldBlock }
        } catch {
            failure = error
        }
        if failure == nil {
            stats.keepalivesSent &+= 1
            keepalive.sent(nowMs: now)
        } else {
            stats.sendErrors &+= 1
            keepalive.keepaliveFailed(nowMs: now)
        }
        recordSend(sent: failure == nil ? 1 : 0, attempted: 1, failure: failure, to: peer)
    }

    private func pollTimeout(now: UInt64) -> Int32 {
        peer == nil ? -1 : keepalive.pollTimeout(nowMs: now)
    }

    // MARK: 5. Signals, status

    private func handleSignals() -> DataPathExit? {
        let sigs = squtun_take_signals()
        if sigs == 0 { return nil }
        for s in [SIGTERM, SIGINT] where sigs & (1 << UInt64(s)) != 0 { return .signal(s) }
        if sigs & (1 << UInt64(SIGHUP)) != 0 {
            if peer != settings.configuredPeer {
                log(LOG_NOTICE, "SIGHUP: forgetting peer \(peer.map { "\($0)" } ?? "none")"
                    + (settings.configuredPeer.map { ", back to \($0)" } ?? ""))
                peer = settings.configuredPeer
                keepalive.peerChanged(nowMs: MonotonicClock.nowMs())
            }
        }
        if sigs & (1 << UInt64(SIGUSR1)) != 0 {
            for line in statusText().split(separator: "\n") { log(LOG_INFO, String(line)) }
        }
        return nil
    }

    public func statusText() -> String {
        var stats = self.stats
        if let c = coalescer?.counters {
            stats.rxPackets &+= c.packets
            stats.rxBytes &+= c.bytes
            stats.tunWriteErrors &+= c.failedPackets
            stats.groWrites = c.mergedWrites
            stats.groPackets = c.mergedPackets
        }
        stats.offload = tun.vnetHeader ? (tun.udpOffload ? "tcp udp" : "tcp") : "off"
        return stats.render(interface: settings.interface, peer: peer.map { "\($0)" } ?? "none",
                     peerSession: opener.peerSession, ownSession: sealer.session,
                     derivations: opener.derivations, nowMonotonicMs: MonotonicClock.nowMs(),
                     logLinesDropped: logLinesDropped())
    }

    private func serveStatus(_ listener: FileDescriptor) {
        _ = ControlSocket.acceptAndReply(listener: listener, text: statusText(), allowedUID: settings.statusUID)
    }
}
