import SqutunSystem
import Glibc
import Shared
import squtun_crypto

/// A server's clients as the worker sees them (docs/SERVER.md), for one
/// cipher suite. Each client is an ordinary tunnel end of its own — a
/// `Device` with one peer (its sealer and opener for the client's key id,
/// address and roaming, keepalives, replay window, counters) and the
/// client's tun as device I/O — and they share the one UDP socket and one
/// set of datagram slots. What is the server's own:
///  - receiving: a datagram's key id names its client (a table lookup, no
///    cryptography); one no client has is counted here, under the reason
///    check 1 of PROTOCOL.md §6 gives it (`unknown-key` once the header
///    is otherwise sound), and costs nothing else;
///  - asking for a tun: the first authenticated datagram of a client with
///    no tun makes the worker ask the helper (`requestTun`);
///  - the client table itself, which only the helper's messages change
///    (`add`, `forget`, `attach`, `refused`).
public final class Server<Cipher: SuiteCipher> {
    public typealias ClientDevice = Device<ServerTunIO, SharedSocket, Cipher>

    public final class Client {
        public let keyId: UInt32
        public let name: String
        public let device: ClientDevice
        /// The client's tunnel key, for a fresh start after an idle timeout.
        let keys: SessionKeyDeriver
        /// When a tun was asked for and not yet answered (monotonic ms).
        var askedAtMs: UInt64?
        /// No new request before this (after a refusal).
        var quietUntilMs: UInt64 = 0

        init(keyId: UInt32, name: String, device: ClientDevice, keys: SessionKeyDeriver) {
            self.keyId = keyId
            self.name = name
            self.device = device
            self.keys = keys
        }

        public var peer: Peer<Cipher> { device.peers[0] }
    }

    /// How long after a refused tun a client's datagrams may ask again.
    public static var retryAfterRefusalMs: UInt64 { 5_000 }
    /// Keepalives and idle clients are looked at this often, not per
    /// wakeup: a visit of every client (a keepalive is at most this late).
    public static var tickMs: UInt64 { 500 }

    public let net: SharedSocket
    private let batches = DeviceBatches()
    /// Slots of clients (nil: free); a client's slot is its index for the event loop.
    public private(set) var clients: [Client?] = []
    private var freeSlots: [Int] = []
    private var byKeyId: [UInt32: Int] = [:]
    /// Datagrams of no client, by reason.
    public private(set) var counters = DropCounters()
    private var unsaid = DropNotice.saidOnce
    private let algorithms: CryptoAlgorithms
    /// One derivation allowance for every client's opener: forged new
    /// sessions spread over many key ids cost what they cost for one.
    private let derivations: DerivationAllowance
    private let start: RunStart
    private let formerSessions: [UInt64]
    private let skewSeconds: Int
    private let keepaliveMs: UInt64
    private let idleTimeoutMs: UInt64
    let clock: DataPathClock
    private let log: (Int32, String) -> Void
    private var lastTickMs: UInt64 = 0
    /// Called for an authenticated client with no tun: ask the helper
    /// (false: the request did not go out).
    public var requestTun: (UInt32, SocketAddress) -> Bool = { _, _ in false }
    /// A request the helper has not answered for this long is made again
    /// (the helper may have been busy running hooks).
    public static var unansweredAfterMs: UInt64 { 30_000 }

    public init(net: SharedSocket, start: RunStart, formerSessions: [UInt64], skewSeconds: Int, keepaliveMs: UInt64,
                idleTimeoutMs: UInt64, clock: DataPathClock = .system,
                derivations: DerivationAllowance = DerivationAllowance(),
                log: @escaping (Int32, String) -> Void) throws {
        self.net = net
        self.derivations = derivations
        algorithms = try CryptoAlgorithms()
        self.start = start
        self.formerSessions = formerSessions
        self.skewSeconds = skewSeconds
        self.keepaliveMs = keepaliveMs
        self.idleTimeoutMs = idleTimeoutMs
        self.clock = clock
        self.log = log
    }

    public var clientCount: Int { byKeyId.count }

    public func client(keyId: UInt32) -> Client? { byKeyId[keyId].flatMap { clients[$0] } }

    // MARK: The table (the helper's messages)

    /// A client of the peers directory (again: one with this key id is
    /// replaced, its tun closed). Returns its slot.
    @discardableResult
    public func add(keyId: UInt32, name: String, key: SecretBytes) throws -> Int {
        _ = forget(keyId: keyId)
        let client = try makeClient(keyId: keyId, name: name, keys: SessionKeyDeriver(psk: key))
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            clients[slot] = client
        } else {
            slot = clients.count
            clients.append(client)
        }
        byKeyId[keyId] = slot
        return slot
    }

    private func makeClient(keyId: UInt32, name: String, keys: SessionKeyDeriver) throws -> Client {
        let crypto = try SuiteCrypto<Cipher>(keySource: keys, start: start, formerSessions: formerSessions,
                                             skewSeconds: skewSeconds, keyId: keyId, algorithms: algorithms,
                                             derivations: derivations)
        let peer = Peer(address: nil, sealer: crypto.sealer, opener: crypto.opener, keepaliveMs: keepaliveMs)
        let log = self.log
        let device = ClientDevice(io: ServerTunIO(), net: net, interface: name, peers: [peer], clock: clock,
                                  batches: batches, log: { priority, line in log(priority, "client \(name): \(line)") })
        return Client(keyId: keyId, name: name, device: device, keys: keys)
    }

    /// The client leaves the table: its tun closes, its keys go. Returns
    /// it (its slot was `slot`), nil if there was none.
    public func forget(keyId: UInt32) -> (client: Client, slot: Int)? {
        guard let slot = byKeyId.removeValue(forKey: keyId), let client = clients[slot] else { return nil }
        client.device.io.detach()
        clients[slot] = nil
        freeSlots.append(slot)
        return (client, slot)
    }

    /// The helper's answer: the client's tun and own socket (connected
    /// here to where the client is now: it may have moved since it asked).
    /// Its slot, nil if the client is gone meanwhile (both are closed then).
    public func attach(keyId: UInt32, tun: consuming Tun, socket: ClientSocket?) -> Int? {
        guard let slot = byKeyId[keyId], let client = clients[slot] else { return nil }
        client.device.io.attach(tun, socket: socket)
        keepSocketWithClient(client)
        client.askedAtMs = nil
        return slot
    }

    /// The client's own socket connected to where the client is now (the
    /// device decides that: roaming), or closed if the kernel refuses: the
    /// shared socket serves the client then.
    private func keepSocketWithClient(_ client: Client) {
        guard let own = client.device.io.socket, let address = client.peer.address, !own.follow(address) else { return }
        client.device.io.dropSocket()
        log(LOG_WARNING, "client \(client.name): its socket cannot follow it to \(address): the shared socket serves it")
    }

    /// The helper made no tun: the client's datagrams stay dropped, and
    /// do not ask again for a while.
    public func refused(keyId: UInt32) {
        guard let client = client(keyId: keyId) else { return }
        client.askedAtMs = nil
        client.quietUntilMs = clock.monotonicMs() &+ Self.retryAfterRefusalMs
    }

    // MARK: Sockets → client devices

    /// The shared socket: receives and opens up to `batchesPerWakeup` batches.
    public func receive() { receive(from: net, batches: ClientDevice.batchesPerWakeup, shared: true) }

    /// A client's own socket: one batch a wakeup, so that every ready
    /// client gets its turn before a busy one gets another.
    public func receive(slot: Int) {
        guard slot < clients.count, let socket = clients[slot]?.device.io.socket else { return }
        receive(from: socket, batches: 1, shared: false)
    }

    /// Datagrams are routed by their key id, whichever socket they came
    /// in on: the socket says only where they came from, not whose they are.
    private func receive<IO: DatagramIO>(from io: IO, batches count: Int, shared: Bool) {
        let rx = batches.rx
        for _ in 0..<count {
            let count: Int
            do {
                count = try io.receiveBatch(rx)
            } catch {
                return
            }
            let now = clock.wallMs()
            let monotonicNow = clock.monotonicMs()
            for i in 0..<count {
                let slot = rx.datagram(i)
                let from = rx.sender(i)
                let segment = Int(rx.gsoSizes[i])
                let step = segment == 0 ? slot.count : segment
                var offset = 0
                repeat {
                    let end = min(offset + step, slot.count)
                    open(UnsafeMutableRawBufferPointer(rebasing: slot[offset..<end]), from: from, nowMs: now,
                         monotonicNow: monotonicNow, shared: shared)
                    offset = end
                } while offset < slot.count
            }
            if count < rx.capacity { return }
        }
    }

    @inline(__always)
    private func open(_ packet: UnsafeMutableRawBufferPointer, from: SocketAddress, nowMs: UInt64, monotonicNow: UInt64,
                      shared: Bool) {
        let keyId = packet.count >= Wire.offsetKeyId + 4 ? UnsafeRawBufferPointer(packet).loadBigEndianUInt32(at: Wire.offsetKeyId) : 0
        guard keyId != 0, let slot = byKeyId[keyId], let client = clients[slot] else {
            refuse(packet, keyId: keyId, from: from)
            return
        }
        let device = client.device
        device.peers[0].opener.clockRead(wallMs: nowMs, monotonicMs: monotonicNow)
        var known: Bool?
        guard device.openDatagram(packet, from: from, fromPeer: &known, nowMs: nowMs, monotonicNow: monotonicNow) else {
            return
        }
        if !device.io.hasTun {
            if monotonicNow >= client.quietUntilMs,
               client.askedAtMs.map({ monotonicNow &- $0 >= Self.unansweredAfterMs }) ?? true {
                client.askedAtMs = requestTun(keyId, from) ? monotonicNow : nil
            }
        } else if shared {
            // A client's datagram on the shared socket: it may have roamed.
            keepSocketWithClient(client)
        }
    }

    /// A datagram no client's key id names: check 1 as a receiver with a
    /// key id it does not carry gives the reason (the protocol's order:
    /// a v1 datagram is `old-version`, a sound header `unknown-key`).
    private func refuse(_ packet: UnsafeMutableRawBufferPointer, keyId: UInt32, from: SocketAddress) {
        let reason: DropReason
        switch Header.parse(UnsafeRawBufferPointer(packet), suite: Cipher.Suite.self, keyId: keyId ^ 1) {
        case .failure(let e): reason = e.dropReason
        case .success: reason = .unknownKey
        }
        counters.drops[reason.rawValue] &+= 1
        if unsaid & (1 << UInt64(reason.rawValue)) != 0 {
            unsaid &= ~(1 << UInt64(reason.rawValue))
            log(LOG_WARNING, DropNotice.line(reason, packet: UnsafeRawBufferPointer(packet), from: from,
                                             suite: Cipher.Suite.id))
        }
    }

    // MARK: Client devices → socket

    /// The client's tun is readable: seal and send what it has. The reason
    /// if its tun is gone (then closed here).
    public func send(slot: Int) -> String? {
        guard slot < clients.count, let client = clients[slot] else { return nil }
        guard let gone = client.device.send() else { return nil }
        client.device.io.detach()
        return gone
    }

    // MARK: Keepalives, idle clients

    /// Every `tickMs` at most: keepalives due, and the clients idle for
    /// longer than the idle timeout (their tun closed and their sessions
    /// forgotten: a fresh start, as if just added). Returns the key ids
    /// whose tun it closed.
    public func tick() -> [UInt32] {
        let now = clock.monotonicMs()
        guard now &- lastTickMs >= Self.tickMs else { return [] }
        lastTickMs = now
        var idle: [UInt32] = []
        for slot in 0..<clients.count {
            guard let client = clients[slot] else { continue }
            client.device.sendKeepalivesIfDue()
            guard idleTimeoutMs > 0, client.device.io.hasTun,
                  now &- (client.peer.counters.lastAuthenticatedMs ?? 0) >= idleTimeoutMs,
                  let fresh = try? makeClient(keyId: client.keyId, name: client.name, keys: client.keys)
            else { continue }
            client.device.io.detach()
            clients[slot] = fresh
            idle.append(client.keyId)
        }
        return idle
    }

    /// Ms until the next tick is due; -1 when nothing is timed.
    public func pollTimeout() -> Int32 {
        guard keepaliveMs > 0 || idleTimeoutMs > 0, clientCount > 0 else { return -1 }
        let since = clock.monotonicMs() &- lastTickMs
        return since >= Self.tickMs ? 0 : Int32(Self.tickMs - since)
    }

    /// SIGHUP in the worker: learnt addresses stay (the helper rescans the
    /// peers directory and says what changed).
    public func logCounters() -> [String] { statusText(logLinesDropped: 0).split(separator: "\n").map(String.init) }
}
