import SqutunSystem
import Glibc
import Shared
import squtun_crypto

/// Both clocks the data path reads, as a seam: the system's in the daemon,
/// a hand-moved one in the tests.
public struct DataPathClock {
    /// CLOCK_REALTIME ms: timestamps sealed, checks 5 and 6 of PROTOCOL.md §6.
    public var wallMs: () -> UInt64
    /// CLOCK_MONOTONIC ms: keepalives, backoffs, the derivation budget.
    public var monotonicMs: () -> UInt64

    public init(wallMs: @escaping () -> UInt64, monotonicMs: @escaping () -> UInt64) {
        self.wallMs = wallMs
        self.monotonicMs = monotonicMs
    }

    public static var system: DataPathClock { DataPathClock(wallMs: WallClock.nowMs, monotonicMs: MonotonicClock.nowMs) }
}

/// One tunnel end (a "device" in the sense of a WireGuard implementation):
/// its peers, its device I/O and its socket, and the steps 2–4 of the data
/// path (see DataPath.swift): received datagrams opened and written to the
/// device, payloads read from the device sealed and sent, keepalives.
/// Generic over both kinds of I/O and the cipher suite; the daemon's
/// instances are compiled for the tun, the UDP socket and the configured
/// suite (nothing dynamic per packet: the suite's `open`/`seal` entries are
/// protocol requirements, direct calls once this is specialised), the
/// tests run two of them over in-memory fakes. Nothing here waits: the caller's loop
/// says when to receive, send or tick.
public final class Device<IO: DeviceIO, Net: DatagramIO & ~Copyable, Cipher: SuiteCipher> {
    /// The layout of the datagrams sealed and opened.
    public typealias Suite = Cipher.Suite
    public typealias Peer = SqutunDataPath.Peer<Cipher>

    /// Batches handled per wakeup before looking at the other fds (fairness).
    public static var batchesPerWakeup: Int { 4 }

    public let io: IO
    public let net: Net
    /// The device's name, for log lines and the status.
    public let interface: String
    /// Today exactly one: every payload read goes to it, every datagram is
    /// offered to it (`peer(for:from:)` is the one place that would choose
    /// among several for a datagram).
    /// (Walked by index: a Collection algorithm such as `first` or
    /// for-in, left unspecialised in a debug build, allocates per call.)
    public let peers: [Peer]
    public private(set) var counters = DropCounters()
    private let clock: DataPathClock
    private let log: (Int32, String) -> Void
    /// At most one line a minute about device packets too long to send.
    private var oversizeLog = LogLimit(intervalMs: 60_000)
    /// The drop reasons still to be said this run (bits by raw value): a
    /// peer of another version, suite or mode is said once, whatever it
    /// sends; the other reasons are counted only, so their bits start clear.
    private var unsaid: UInt64 = DropNotice.saidOnce
    /// One batch per direction (`DeviceBatches`).
    private let tx: DatagramBatch
    private let rx: DatagramBatch
    /// Payload length of each sealed tx slot (for the byte counter).
    private let txPayload: UnsafeMutablePointer<UInt32>

    /// `batches`: the slots to use, shared by the devices of one thread (a
    /// server's clients: one set for all of them, not 5 MiB of address
    /// space each); nil: its own.
    public init(io: IO, net: consuming Net, interface: String, peers: [Peer], clock: DataPathClock = .system,
                batches: DeviceBatches? = nil, log: @escaping (Int32, String) -> Void) {
        // Opened payloads are written where they were decrypted: the device
        // I/O's headroom must be inside what the suite leaves free.
        precondition(!peers.isEmpty, "a device without a peer")
        precondition(io.headroom <= Suite.headroom,
                     "the device I/O needs \(io.headroom) free bytes in front of each payload, "
                     + "the cipher suite leaves \(Suite.headroom)")
        self.io = io
        self.net = net
        self.interface = interface
        self.peers = peers
        self.clock = clock
        self.log = log
        let b = batches ?? DeviceBatches()
        tx = b.tx
        rx = b.rx
        txPayload = .allocate(capacity: tx.capacity)
        txPayload.initialize(repeating: 0, count: tx.capacity)
    }

    deinit { txPayload.deallocate() }

    // MARK: Which peer

    /// The peer a received datagram is for. With one peer, that one: its
    /// opener decides. A server would look it up by a header field here.
    @inline(__always)
    func peer(for datagram: UnsafeMutableRawBufferPointer, from: SocketAddress) -> Peer? { peers[0] }

    // MARK: 2. Socket → device

    /// Receives and opens up to `batchesPerWakeup` batches, writing what is
    /// authentic to the device.
    public func receive() {
        for _ in 0..<Self.batchesPerWakeup {
            let count: Int
            do {
                count = try net.receiveBatch(rx)
            } catch {
                return  // ICMP errors (ECONNREFUSED …) surface here; nothing to do
            }
            // One clock reading per batch, for every datagram in it.
            let now = clock.wallMs()
            let monotonicNow = clock.monotonicMs()
            for i in 0..<peers.count { peers[i].opener.clockRead(wallMs: now, monotonicMs: monotonicNow) }
            for i in 0..<count {
                let slot = rx.datagram(i)
                let from = rx.sender(i)
                // A slot is one datagram, or several of `segment` bytes
                // (the last maybe shorter) coalesced by UDP GRO: opened one
                // by one. An empty datagram is still opened (and refused).
                let segment = Int(rx.gsoSizes[i])
                let step = segment == 0 ? slot.count : segment
                var fromPeer: Bool?  // the slot's sender is the peer's address: asked once per slot
                var offset = 0
                repeat {
                    let end = min(offset + step, slot.count)
                    openDatagram(UnsafeMutableRawBufferPointer(rebasing: slot[offset..<end]), from: from,
                                 fromPeer: &fromPeer, nowMs: now, monotonicNow: monotonicNow)
                    offset = end
                } while offset < slot.count
            }
            io.flush()  // before the next receive reuses the slots it points into
            if count < rx.capacity { return }
        }
    }

    /// `fromPeer`: whether `from` is the peer's address, once known for the
    /// slot (comparing means copying the peer's 136-byte address out);
    /// with one peer it holds for every datagram of the slot until one of
    /// them moves the peer there. (With several, it would be per peer.)
    /// Opens one datagram for the peer and writes what is authentic to the
    /// device; true if it was authentic. (A server calls it for the client
    /// the datagram's key id names.)
    @inline(__always)
    @discardableResult
    func openDatagram(_ packet: UnsafeMutableRawBufferPointer, from: SocketAddress, fromPeer known: inout Bool?,
                      nowMs: UInt64, monotonicNow: UInt64) -> Bool {
        guard let peer = peer(for: packet, from: from) else {
            counters.drops[DropReason.unknownSender.rawValue] &+= 1
            return false
        }
        let fromPeer = known ?? (peer.address == from)
        known = fromPeer
        switch Cipher.open(packet, with: peer.opener, fromPeer: fromPeer, nowMs: nowMs, monotonicMs: monotonicNow) {
        case .drop(let reason):
            counters.drops[reason.rawValue] &+= 1
            if unsaid & (1 << UInt64(reason.rawValue)) != 0 {
                unsaid &= ~(1 << UInt64(reason.rawValue))
                log(LOG_WARNING, DropNotice.line(reason, packet: UnsafeRawBufferPointer(packet), from: from,
                                                 suite: Suite.id))
            }
            return false
        case .data(let length):
            io.write(packet.baseAddress! + Suite.payloadStart, length: length)
        case .keepalive:
            peer.counters.keepalivesReceived &+= 1
        }
        peer.counters.lastAuthenticatedMs = monotonicNow
        if !fromPeer {
            log(LOG_NOTICE, peer.move(to: from, nowMs: monotonicNow))
            known = true
        }
        return true
    }

    // MARK: 3. Device → socket

    /// Reads payloads from the device I/O, seals each into a tx slot and
    /// sends full batches to the peer: up to `batchesPerWakeup` batches'
    /// worth of payloads (fairness: the socket's turn comes), and the rest
    /// of a super-packet begun (no poll wakeup would come for it). The
    /// reason if the device is gone.
    public func send() -> String? {
        var budget = tx.capacity * Self.batchesPerWakeup
        // Every payload goes to the one peer; with several, a batch per
        // peer chosen by destination address.
        let peer = peers[0]
        // Read once per round, not per packet (an address is 136 bytes to
        // copy out of the peer): only a received datagram or SIGHUP, never
        // this loop, changes it.
        let hasAddress = peer.address != nil
        while true {
            var sealed = 0
            var done = false
            let now = clock.wallMs()
            filling: while sealed < tx.capacity {
                if budget <= 0 && !io.hasPending {
                    done = true
                    break filling
                }
                // Room for more than the largest payload: a longer packet
                // (a device MTU above it) must be seen as such, not read cut
                // to a length that fits (the kernel returns what it copied,
                // or on some kernels the full length) and sent truncated.
                let room = UnsafeMutableRawBufferPointer(rebasing: tx.slot(sealed)[Suite.payloadStart...])
                let length: Int
                switch io.read(into: room) {
                case .payload(let n): length = n
                case .skipped: continue
                case .drained:
                    done = true
                    break filling
                case .gone(let why):
                    flush(sealed, to: peer)
                    return why
                }
                budget -= 1
                let payload = UnsafeRawBufferPointer(rebasing: room[0..<min(length, room.count)])
                if length > Suite.maxPayloadLength {
                    dropOversize(length, packet: payload)
                    continue
                }
                guard hasAddress else {
                    counters.noPeer &+= 1
                    continue
                }
                if seal(sealed, payloadLength: length, for: peer, nowMs: now) { sealed += 1 }
            }
            flush(sealed, to: peer)
            if done { return nil }
        }
    }

    /// Seals the payload in tx slot `i`; false (counted) if it could not be.
    @inline(__always)
    private func seal(_ i: Int, payloadLength: Int, for peer: Peer, nowMs: UInt64) -> Bool {
        guard let n = try? Cipher.seal(tx.slot(i), with: peer.sealer, type: .data, payloadLength: payloadLength,
                                       nowMs: nowMs)
        else {
            peer.counters.sendErrors &+= 1
            return false
        }
        tx.lengths[i] = UInt32(n)
        txPayload[i] = UInt32(payloadLength)
        return true
    }

    /// Sends tx slots 0..<count to the peer; counts what went out and what did not.
    private func flush(_ count: Int, to peer: Peer) {
        guard count > 0, let address = peer.address else { return }
        let now = clock.monotonicMs()
        let result = net.sendBatch(tx, count: count, to: address, gso: peer.gso.allowed(nowMs: now))
        peer.gso.update(result, nowMs: now)
        peer.counters.txPackets &+= UInt64(result.sent)
        for i in 0..<result.sent { peer.counters.txBytes &+= UInt64(txPayload[i]) }
        peer.counters.sendErrors &+= UInt64(count - result.sent)
        if result.sent > 0 { peer.keepalive.sent(nowMs: now) }
        recordSend(sent: result.sent, attempted: count, failure: result.failure, to: peer, address: address)
    }

    /// Logs when sending to the peer starts failing and when it works
    /// again; the datagrams themselves are counted by the caller.
    @inline(__always)
    private func recordSend(sent: Int, attempted: Int, failure: Errno?, to peer: Peer, address: SocketAddress) {
        switch peer.health.record(sent: sent, attempted: attempted, failure: failure) {
        case .none: break
        case .startedFailing(let e):
            log(LOG_WARNING, "cannot send to peer \(address): \(e) (counted as send-errors; logged again when it works)")
        case .recovered(let lost):
            log(LOG_NOTICE, "sending to peer \(address) works again (\(lost) datagrams could not be sent)")
        }
    }

    /// A device packet longer than any datagram can carry: dropped, counted,
    /// and said at most once a minute (with how many since the last line).
    /// Its length for the line comes from its IP header (behind the
    /// link-layer header, when that says IPv4 or IPv6): the read may have
    /// been cut to the buffer.
    private func dropOversize(_ read: Int, packet: UnsafeRawBufferPointer) {
        counters.oversize &+= 1
        guard let more = oversizeLog.allow(nowMs: clock.monotonicMs()) else { return }
        var length = read
        let ip = io.linkLayerOffset
        // An Ethernet frame: its EtherType (bytes 12, 13) names what follows.
        let carriesIP = ip == 0 || (packet.count >= ip && (packet[12], packet[13]) == (0x08, 0x00))
            || (packet.count >= ip && (packet[12], packet[13]) == (0x86, 0xdd))
        if carriesIP && packet.count >= ip + 6 {
            let field = Int(packet[ip + 2]) << 8 | Int(packet[ip + 3])
            switch packet[ip] >> 4 {
            case 4: length = max(read, ip + field)
            case 6: length = max(read, ip + 40 + (Int(packet[ip + 4]) << 8 | Int(packet[ip + 5])))
            default: break
            }
        }
        log(LOG_WARNING, "dropped a \(length)-byte packet read from \(interface): longer than the "
            + "largest payload squtun can send (\(Suite.maxPayloadLength) bytes)"
            + (more > 0 ? ", and \(more) more since the last such line" : "")
            + "; set the MTU of \(interface) to \(Suite.maxPayloadLength - ip) or less (tx-oversize)")
    }

    // MARK: 4. Keepalive

    /// Sends each peer that is due one an empty keepalive.
    public func sendKeepalivesIfDue() {
        let now = clock.monotonicMs()
        for i in 0..<peers.count { sendKeepaliveIfDue(peers[i], now: now) }
    }

    private func sendKeepaliveIfDue(_ peer: Peer, now: UInt64) {
        guard let address = peer.address, peer.keepalive.isDue(nowMs: now) else { return }
        let slot = tx.slot(0)
        guard let n = try? Cipher.seal(slot, with: peer.sealer, type: .keepalive, payloadLength: 0, nowMs: clock.wallMs())
        else {
            peer.counters.sendErrors &+= 1
            peer.keepalive.keepaliveFailed(nowMs: now)
            return
        }
        var failure: Errno?
        do {
            if try !net.send(UnsafeRawBufferPointer(rebasing: slot[0..<n]), to: address) { failure = .wouldBlock }
        } catch {
            failure = error
        }
        if failure == nil {
            peer.counters.keepalivesSent &+= 1
            peer.keepalive.sent(nowMs: now)
        } else {
            peer.counters.sendErrors &+= 1
            peer.keepalive.keepaliveFailed(nowMs: now)
        }
        recordSend(sent: failure == nil ? 1 : 0, attempted: 1, failure: failure, to: peer, address: address)
    }

    /// Ms until the next keepalive is due (capped at a minute); -1: none.
    public func pollTimeout() -> Int32 {
        let now = clock.monotonicMs()
        var timeout: Int32 = -1
        for i in 0..<peers.count where peers[i].address != nil {
            let t = peers[i].keepalive.pollTimeout(nowMs: now)
            if t >= 0 && (timeout < 0 || t < timeout) { timeout = t }
        }
        return timeout
    }

    // MARK: 5. SIGHUP, status

    /// Learnt addresses forgotten, back to the configured ones.
    public func forgetLearntAddresses() {
        let now = clock.monotonicMs()
        for peer in peers {
            if let line = peer.forgetLearntAddress(nowMs: now) { log(LOG_NOTICE, line) }
        }
    }

    /// The counters of the device, its I/O and its (one) peer, as `squtun status` shows them.
    public func stats() -> Stats {
        var s = Stats()
        s.dropped = counters
        s.device = io.counters
        s.offload = io.offloadName
        s.mode = io.linkLayerOffset > 0 ? "tap" : "tun"
        s.peer = peers[0].counters
        return s
    }

    public func statusText(logLinesDropped: UInt64) -> String {
        let peer = peers[0]
        return stats().render(interface: interface, suite: SuiteID.describe(Cipher.Suite.id),
                              peer: peer.address.map { "\($0)" } ?? "none",
                              peerSession: peer.opener.peerSession, ownSession: peer.sealer.session,
                              derivations: peer.opener.derivations, nowMonotonicMs: clock.monotonicMs(),
                              logLinesDropped: logLinesDropped)
    }
}
