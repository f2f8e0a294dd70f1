import SqutunSystem
import Glibc
import CShim
import Shared
import squtun_crypto

// The data path, run by the unprivileged worker (or by the single process
// of an unprivileged start). One thread, one loop; the steps and where
// each lives:
//
//  1. Wait (PollSlots, below): poll on fixed slots — UDP socket, device,
//     the wake pipe of the signal handler, the helper channel, the status
//     listener; timeout = the next keepalive due (Device.pollTimeout).
//  2. Socket → device (Device.receive): a batch from the socket
//     (DatagramIO: 16 slots per recvmmsg, each one datagram or up to 64
//     coalesced by UDP GRO, split first) → the peer it is for
//     (Device.peer(for:)) → its Opener (every check of PROTOCOL.md §6, in
//     order) → the device I/O's write (DeviceIO). An authenticated
//     datagram from a new address moves the peer there (Peer.move). With
//     tun offloads (OffloadTunIO), consecutive TCP segments (and
//     equal-sized UDP datagrams) of a flow in one batch go to the tun as
//     one super-packet (Coalescer: merge on write). The device I/O counts
//     what the device took: the one count of received packets.
//  3. Device → socket (Device.send, the one send loop): a payload per
//     DeviceIO.read straight into a tx slot (with tun offloads a TCP or
//     UDP super-packet is cut into its packets first, TSOPlan: split on
//     read) → the peer's Sealer → the batch to the peer's address, up to
//     64 datagrams per call, runs of equal size as one UDP GSO send
//     (counted as no-peer if there is no peer yet).
//  4. Keepalive (Device.sendKeepalivesIfDue): nothing sent to a peer for
//     -a seconds → an empty keepalive. A failed one is retried from the
//     attempt, backed off (KeepaliveSchedule): a lasting send error never
//     spins the loop.
//  5. Status connection → the counters as text; channel hang-up → exit;
//     SIGTERM/SIGINT → exit; SIGHUP → forget a learnt peer address;
//     SIGUSR1 → log counters (this file).
//
// Buffers are allocated once; nothing on the per-packet path allocates.
// The device, the socket and the cipher suite are generic parameters of
// `Device`, compiled here for the tun, UDPSocket and each suite (`Engine`,
// chosen once at start): no dynamic dispatch per packet.

/// How the data path ended.
public enum DataPathExit: Equatable {
    case signal(Int32)
    case channelClosed
    case tunGone(String)
    case fatal(String)
}

public final class DataPath {
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

    /// The tunnel end, compiled for the configured suite and the tun as it
    /// was opened: chosen once here, every loop below is specialised for it.
    private enum Engine {
        case aes256CBCHMACSHA256(Ends<PacketCipher>)
        case aes256GCM(Ends<AES256GCMCipher>)
        case chacha20Poly1305(Ends<ChaCha20Poly1305Cipher>)
    }

    private enum Ends<Cipher: SuiteCipher> {
        case plain(Device<PlainTunIO, UDPSocket, Cipher>)
        case offload(Device<OffloadTunIO, UDPSocket, Cipher>)
    }

    private let settings: Settings
    private let engine: Engine
    private let slots: PollSlots
    /// Log lines this process could not get out (the logger lives above
    /// the data path: it is told how to ask).
    private let logLinesDropped: () -> UInt64
    private let log: (Int32, String) -> Void
    /// Says what repeated bad-mac drops from the peer most likely mean.
    private var authHint = AuthFailureHint()

    /// Takes over the tun and the socket: they close when the data path goes.
    public init(settings: Settings, tun: consuming Tun, udp: consuming UDPSocket, wake: FileDescriptor,
                channel: FileDescriptor?, control: FileDescriptor?, crypto: TunnelCrypto,
                log: @escaping (Int32, String) -> Void, logLinesDropped: @escaping () -> UInt64) {
        self.settings = settings
        self.log = log
        self.logLinesDropped = logLinesDropped
        // Views for poll(2); the device I/O and the device own the fds.
        slots = PollSlots(udp: udp.fd, device: tun.fd, wake: wake, channel: channel, control: control)
        switch crypto {
        case .aes256CBCHMACSHA256(let c):
            engine = .aes256CBCHMACSHA256(Self.ends(c, settings: settings, tun: tun, udp: udp, log: log))
        case .aes256GCM(let c):
            engine = .aes256GCM(Self.ends(c, settings: settings, tun: tun, udp: udp, log: log))
        case .chacha20Poly1305(let c):
            engine = .chacha20Poly1305(Self.ends(c, settings: settings, tun: tun, udp: udp, log: log))
        }
    }

    private static func ends<Cipher>(_ crypto: SuiteCrypto<Cipher>, settings: Settings, tun: consuming Tun,
                                     udp: consuming UDPSocket, log: @escaping (Int32, String) -> Void) -> Ends<Cipher> {
        let peer = Peer(address: settings.configuredPeer, sealer: crypto.sealer, opener: crypto.opener,
                        keepaliveMs: settings.keepaliveMs)
        if tun.vnetHeader {
            // The coalescer writes into the bytes in front of each opened
            // payload: the suite says how many there are (checked there).
            let io = OffloadTunIO(tun: tun, maxPayload: Cipher.Suite.maxPayloadLength, headroom: Cipher.Suite.headroom)
            return .offload(Device(io: io, net: udp, interface: settings.interface, peers: [peer], log: log))
        }
        return .plain(Device(io: PlainTunIO(tun: tun), net: udp, interface: settings.interface, peers: [peer],
                             log: log))
    }

    /// Leaves the device without offloads, through the fd the data path
    /// holds (the single process, whose seccomp filter allows exactly this
    /// ioctl; the root helper does it after its worker is gone instead).
    public func switchTunOffloadsOff() {
        switch engine {
        case .aes256CBCHMACSHA256(let e): Self.switchOffloadsOff(e)
        case .aes256GCM(let e): Self.switchOffloadsOff(e)
        case .chacha20Poly1305(let e): Self.switchOffloadsOff(e)
        }
    }

    private static func switchOffloadsOff<Cipher>(_ ends: Ends<Cipher>) {
        if case .offload(let device) = ends { device.io.tun.switchOffloadsOff() }
    }

    /// Runs until a signal, the helper, or a fault ends it.
    public func run() -> DataPathExit {
        switch engine {
        case .aes256CBCHMACSHA256(let e): run(e)
        case .aes256GCM(let e): run(e)
        case .chacha20Poly1305(let e): run(e)
        }
    }

    private func run<Cipher>(_ ends: Ends<Cipher>) -> DataPathExit {
        switch ends {
        case .plain(let device): run(device)
        case .offload(let device): run(device)
        }
    }

    private func run<IO: DeviceIO, Cipher>(_ device: Device<IO, UDPSocket, Cipher>) -> DataPathExit {
        // A restarted peer learns our new session at once.
        device.sendKeepalivesIfDue()
        while true {
            // 1. Wait.
            let n = slots.wait(timeoutMs: device.pollTimeout())
            if n < 0 && errno != EINTR { return .fatal("poll: \(Errno.current)") }
            // 5. Signals first: SIGTERM must win over a flood.
            if let end = handleSignals(device) { return end }
            if n > 0 {
                if slots.take(.udp) != 0 {  // 2.
                    device.receive()
                    // One peer today: its last authenticated datagram.
                    if let hint = authHint.check(badMAC: device.counters.dropped(.badMAC),
                                                 lastAuthenticatedMs: device.peers[0].counters.lastAuthenticatedMs,
                                                 nowMs: MonotonicClock.nowMs()) {
                        log(LOG_WARNING, hint)
                    }
                }
                let ev = slots.take(.device)
                if ev & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                    return .tunGone("tun device \(settings.interface) is gone")
                }
                if ev != 0, let gone = device.send() { return .tunGone(gone) }  // 3.
                if slots.take(.wake) != 0 { slots.drain(.wake) }
                // The helper sends nothing after setup: data or hang-up both end us.
                if slots.take(.channel) != 0 { return .channelClosed }
                if slots.take(.control) != 0, let control = slots.descriptor(.control) {
                    _ = ControlSocket.acceptAndReply(listener: control, text: statusText(device),
                                                     allowedUID: settings.statusUID)
                }
            }
            device.sendKeepalivesIfDue()  // 4.
        }
    }

    // MARK: 5. Signals, status

    private func handleSignals<IO: DeviceIO, Cipher>(_ device: Device<IO, UDPSocket, Cipher>) -> DataPathExit? {
        let sigs = squtun_take_signals()
        if sigs == 0 { return nil }
        for s in [SIGTERM, SIGINT] where sigs & (1 << UInt64(s)) != 0 { return .signal(s) }
        if sigs & (1 << UInt64(SIGHUP)) != 0 { device.forgetLearntAddresses() }
        if sigs & (1 << UInt64(SIGUSR1)) != 0 {
            for line in statusText(device).split(separator: "\n") { log(LOG_INFO, String(line)) }
        }
        return nil
    }

    private func statusText<IO: DeviceIO, Cipher>(_ device: Device<IO, UDPSocket, Cipher>) -> String {
        device.statusText(logLinesDropped: logLinesDropped())
    }

    /// The counters as `squtun status` shows them.
    public func statusText() -> String {
        switch engine {
        case .aes256CBCHMACSHA256(let e): statusText(e)
        case .aes256GCM(let e): statusText(e)
        case .chacha20Poly1305(let e): statusText(e)
        }
    }

    private func statusText<Cipher>(_ ends: Ends<Cipher>) -> String {
        switch ends {
        case .plain(let device): statusText(device)
        case .offload(let device): statusText(device)
        }
    }
}

/// What the data path's loop waits on: one poll set with a fixed slot per
/// kind of fd, so that a ready fd is known by its slot, not by comparing
/// descriptors. An absent fd (no channel in the single process, no status
/// listener in some tests) keeps its slot with fd -1, which poll skips.
final class PollSlots {
    enum Slot: Int, CaseIterable {
        case udp, device, wake, channel, control
    }
    /// `Slot.allCases.count`, without the array allCases makes on each call.
    static let count = 5

    private let set: UnsafeMutablePointer<pollfd>
    private let descriptors: [FileDescriptor?]

    init(udp: FileDescriptor, device: FileDescriptor, wake: FileDescriptor, channel: FileDescriptor?,
         control: FileDescriptor?) {
        descriptors = [udp, device, wake, channel, control]
        precondition(Slot.allCases.count == Self.count)
        set = .allocate(capacity: Self.count)
        for slot in Slot.allCases {
            set[slot.rawValue] = pollfd(fd: descriptors[slot.rawValue]?.rawValue ?? -1, events: Int16(POLLIN),
                                        revents: 0)
        }
    }

    deinit { set.deallocate() }

    /// poll(2) on every slot; what it returned.
    func wait(timeoutMs: Int32) -> Int32 {
        poll(set, nfds_t(Self.count), timeoutMs)
    }

    /// The events of `slot` from the last wait, cleared.
    @inline(__always)
    func take(_ slot: Slot) -> Int16 {
        let ev = set[slot.rawValue].revents
        set[slot.rawValue].revents = 0
        return ev
    }

    func descriptor(_ slot: Slot) -> FileDescriptor? { descriptors[slot.rawValue] }

    func drain(_ slot: Slot) { descriptors[slot.rawValue]?.drain() }
}
