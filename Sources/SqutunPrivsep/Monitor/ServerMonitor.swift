import SqutunSystem
import SqutunConfig
import Glibc
import Shared
import squtun_crypto

/// The root helper's side of a server (docs/SERVER.md): the clients of the
/// peers directory as the helper knows them — read by the helper itself,
/// never taken from the worker — and what the worker may ask about them.
/// The worker is treated as hostile: a tun is made only for a key id that
/// has a file in the directory now, one at a time per client, at most
/// `maxClients` at once and at most `tunsPerSecond` a second.
package final class ServerMonitor {
    struct Known {
        let name: String
        /// T, wiped once the worker has it: a fingerprint tells a changed key.
        let fingerprint: [UInt8]
        /// Its tun, while the worker holds one, and the address it was asked for from.
        var tun: String?
        var address: SocketAddress?
        /// The inode of the client's own socket that came with the tun.
        var socketInode: UInt64?
    }

    package static let tunsPerSecond: UInt64 = 50
    package static let tunBurst: UInt64 = 100
    package static let hookTimeoutMs = 10_000
    /// How long a message of a batch (the clients at start, a rescan) may
    /// wait for room in the channel: a worker that reads takes thousands a
    /// second; one that does not is given up on.
    package static let pushTimeoutMs: Int32 = 5_000
    /// The worker's extra time to stop per client tun it holds.
    package static let stopGracePerTunMs: UInt64 = 50

    /// Client tuns the worker holds (as far as the helper knows): those of
    /// its clients, and of forgotten ones it has not yet closed.
    package var tunCount: Int { clients.values.reduce(closing.count) { $0 + ($1.tun == nil ? 0 : 1) } }

    let settings: ServerSettings
    let suite: SuiteID
    let uid: UInt32
    let gid: UInt32
    let mtu: Int
    /// The main socket's address and kind, for each client's own socket
    /// (set once the main socket is open).
    package var clientSocketTemplate: UDPSocket.ClientSocketTemplate?
    /// The worker, whose descriptors say whether it closed a client's socket.
    package var workerPid: pid_t = 0
    private(set) var clients: [UInt32: Known] = [:]
    /// Clients forgotten whose tun the worker has not yet said it closed.
    private var closing: [UInt32: Known] = [:]
    private var bucket = TokenBucket(perSecond: ServerMonitor.tunsPerSecond, burst: ServerMonitor.tunBurst)
    /// Requests refused for their rate, not logged one by one.
    package private(set) var refusedUnlogged: UInt64 = 0

    package init(settings: ServerSettings, suite: SuiteID, uid: UInt32, gid: UInt32, ipv6Underlay: Bool) {
        self.settings = settings
        self.suite = suite
        self.uid = uid
        self.gid = gid
        mtu = MTU.tunMTU(linkMTU: 1500, underlay: ipv6Underlay ? .ipv6 : .ipv4, suite: suite) ?? 1280
    }

    // MARK: The peers directory

    /// One client of the directory with its tunnel key T.
    package struct Loaded {
        let file: ClientFile
        let tunnelKey: SecretBytes
    }

    /// Reads the directory: its clients with T (the PSK, or derived from
    /// the server's private key and the client's public key, the private
    /// key read and wiped per client), each problem logged as one line.
    package func load() throws -> [Loaded] {
        let scan = try PeersDirectory.scan(path: settings.peersDirectory, expecting: settings.clientKeyKind)
        for problem in scan.problems { Log.warning(problem) }
        var loaded: [Loaded] = []
        for file in scan.clients {
            do {
                loaded.append(Loaded(file: file, tunnelKey: try tunnelKey(file)))
            } catch {
                Log.warning("\(settings.peersDirectory)/\(file.name): \(error)")
            }
        }
        return loaded
    }

    private func tunnelKey(_ file: ClientFile) throws -> SecretBytes {
        guard let keyPath = settings.serverKeyPath else { return file.key.withUnsafeBytes { SecretBytes(copying: $0) } }
        let publicText = KeyFile.publicKeyText(file.key.withUnsafeBytes { Array($0) })
        switch try KeyFile.readTunnelKeys(keyPath: keyPath, peerKey: publicText, pskPath: settings.pskPath) {
        case .psk(let psk):
            psk.wipe()
            throw PrivsepError.serverKeyNotPrivate(path: keyPath)
        case let .keypair(privateKey, peerPublic, mixed):
            defer {
                privateKey.wipe()
                mixed?.wipe()
            }
            return try TunnelKey.derive(privateKey: privateKey, peerPublic: peerPublic, psk: mixed,
                                        algorithms: CryptoAlgorithms())
        }
    }

    private static func fingerprint(_ key: SecretBytes) -> [UInt8] {
        key.withUnsafeBytes { ClientKeyID.sha256(Array("squtun v2 key fingerprint".utf8) + Array($0)) }
    }

    /// After `ready`: every client of the directory to the worker.
    package func sendAll(_ loaded: [Loaded], on channel: borrowing Channel) throws(PrivsepError) {
        for entry in loaded { try add(entry, on: channel) }
        Log.notice("serving \(clients.count) client\(clients.count == 1 ? "" : "s") of \(settings.peersDirectory)")
    }

    private func add(_ entry: Loaded, on channel: borrowing Channel) throws(PrivsepError) {
        defer { entry.tunnelKey.wipe() }
        // Many at once (a directory of thousands): wait for the worker to make room.
        try channel.send(.clientKey(keyId: entry.file.keyId, name: entry.file.name, key: entry.tunnelKey),
                         waitingAtMostMs: Self.pushTimeoutMs)
        clients[entry.file.keyId] = Known(name: entry.file.name, fingerprint: Self.fingerprint(entry.tunnelKey))
    }

    /// SIGHUP: reads the directory again. A client whose file is gone or
    /// whose key changed is forgotten (the worker closes its tun and says
    /// so: the hook's `down` runs then); a new one is added; the others
    /// are not touched.
    package func rescan(on channel: borrowing Channel) throws(PrivsepError) {
        let loaded: [Loaded]
        do { loaded = try load() } catch {
            Log.error("SIGHUP: \(error); the clients stay as they were")
            return
        }
        var seen = Set<UInt32>()
        var added = 0, forgotten = 0
        for entry in loaded {
            seen.insert(entry.file.keyId)
            if let known = clients[entry.file.keyId], known.name == entry.file.name,
               known.fingerprint == Self.fingerprint(entry.tunnelKey) {
                entry.tunnelKey.wipe()
                continue
            }
            if clients[entry.file.keyId] != nil {
                try forget(entry.file.keyId, on: channel)
                forgotten += 1
            }
            try add(entry, on: channel)
            added += 1
        }
        for keyId in clients.keys where !seen.contains(keyId) {
            try forget(keyId, on: channel)
            forgotten += 1
        }
        Log.notice("SIGHUP: \(settings.peersDirectory) read again: \(added) client\(added == 1 ? "" : "s") added, "
            + "\(forgotten) forgotten, \(clients.count) in all")
    }

    private func forget(_ keyId: UInt32, on channel: borrowing Channel) throws(PrivsepError) {
        guard let known = clients.removeValue(forKey: keyId) else { return }
        try channel.send(.clientForget(keyId: keyId), waitingAtMostMs: Self.pushTimeoutMs)
        Log.notice("client \(known.name): forgotten (its file is gone or its key changed)")
        // Its tun is the worker's to close: the hook's `down` runs when it says it did.
        if known.tun != nil { closing[keyId] = known }
    }

    // MARK: Requests

    /// `clientTunRequest`: a tun for an authenticated client, or why not.
    package func tunRequest(keyId: UInt32, address: SocketAddress, on channel: borrowing Channel) throws(PrivsepError)
        -> MonitorOutcome {
        // Every request spends a token first, so that a hostile worker's
        // stream of them costs neither tuns nor log lines beyond the rate.
        guard bucket.take(nowMs: MonotonicClock.nowMs()) else {
            if refusedUnlogged == 0 {
                Log.warning("worker asks for tuns faster than \(Self.tunsPerSecond) a second: refusing them "
                    + "(counted; the count is logged once it slows down)")
            }
            refusedUnlogged &+= 1
            try channel.send(.clientRefused(keyId: keyId, reason: .rateLimited), waitingAtMostMs: Self.pushTimeoutMs)
            return .answered
        }
        sayRefusals()
        guard var known = clients[keyId] else {
            Log.warning("worker asked for a tun for key id \(keyId), which no file in \(settings.peersDirectory) has: refused")
            try channel.send(.clientRefused(keyId: keyId, reason: .unknown), waitingAtMostMs: Self.pushTimeoutMs)
            return .answered
        }
        func refuse(_ reason: ClientRefusal) throws(PrivsepError) -> MonitorOutcome {
            Log.warning("client \(known.name): no tun: \(reason)")
            try channel.send(.clientRefused(keyId: keyId, reason: reason), waitingAtMostMs: Self.pushTimeoutMs)
            return .answered
        }
        if known.tun != nil { return try refuse(.hasTun) }
        if tunCount >= settings.maxClients { return try refuse(.tooMany) }
        let made: (fd: FileDescriptor, name: String)
        do {
            made = try ClientTun.create(pattern: settings.tunPattern, uid: uid, gid: gid, mtu: mtu)
        } catch {
            Log.error("client \(known.name): \(error)")
            return try refuse(.deviceFailed)
        }
        if !hook(known.name, tun: made.name, address: address, event: "up") {
            made.fd.close()  // not persistent: the device goes with it
            return try refuse(.hookFailed)
        }
        // Its own socket is for fairness, not for service: without one
        // (e.g. no route back to the address the worker names, when
        // connecting) the shared socket serves the client.
        let socket = ownSocket(known.name, address: address)
        defer {
            made.fd.close()  // the worker has its own copies
            socket?.close()
        }
        try channel.send(.clientTun(keyId: keyId, interface: made.name, fd: made.fd, socket: socket),
                         waitingAtMostMs: Self.pushTimeoutMs)
        known.tun = made.name
        known.address = address
        known.socketInode = socket.flatMap(ProcessFiles.socketInode)
        clients[keyId] = known
        Log.notice("client \(known.name): \(made.name) up for \(address)")
        return .answered
    }

    /// A socket of the client's own, connected to `address`; nil (said) if it cannot be made.
    private func ownSocket(_ name: String, address: SocketAddress) -> FileDescriptor? {
        guard let template = clientSocketTemplate else { return nil }
        do {
            return try UDPSocket.openClientSocket(like: template, connectedTo: address).release()
        } catch {
            Log.warning("client \(name): no socket of its own (\(error)): the shared socket serves it")
            return nil
        }
    }

    /// `clientClosed`: the worker closed a client's tun (idle, forgotten, gone).
    /// The device must be gone (the helper keeps no copy of a tun's fd, so
    /// the worker's close removed it), and the client's own socket out of
    /// the worker's descriptors: a worker that says so while it keeps
    /// either gets no room for another one.
    package func closed(keyId: UInt32, reason: ClientClosure) -> MonitorOutcome {
        let forgotten = closing[keyId]
        guard let known = forgotten ?? clients[keyId], let tun = known.tun else { return .answered }
        guard if_nametoindex(tun) == 0 else {
            Log.warning("worker said it closed \(tun) of client \(known.name), which still exists: still counted")
            return .answered
        }
        if let inode = known.socketInode, workerPid > 0, ProcessFiles.holdsSocket(pid: workerPid, inode: inode) {
            Log.warning("worker said it closed \(tun) of client \(known.name) and its socket, which it still holds: still counted")
            return .answered
        }
        if forgotten != nil { closing[keyId] = nil } else {
            clients[keyId]?.tun = nil
            clients[keyId]?.socketInode = nil
        }
        Log.notice("client \(known.name): \(tun) closed (\(reason))")
        down(known.name, tun: tun, address: known.address)
        return .answered
    }

    /// The tun requests refused for their rate since the last such line.
    private func sayRefusals() {
        guard refusedUnlogged > 0 else { return }
        Log.warning("worker asked for tuns faster than \(Self.tunsPerSecond) a second: \(refusedUnlogged) requests refused")
        refusedUnlogged = 0
    }

    /// The worker is gone: its tuns went with it.
    package func workerGone() {
        sayRefusals()
        for (keyId, known) in clients {
            guard let tun = known.tun else { continue }
            clients[keyId]?.tun = nil
            down(known.name, tun: tun, address: known.address)
        }
        for (_, known) in closing { if let tun = known.tun { down(known.name, tun: tun, address: known.address) } }
        closing = [:]
    }

    private func down(_ name: String, tun: String, address: SocketAddress?) {
        _ = hook(name, tun: tun, address: address, event: "down")
    }

    // MARK: The hook

    /// Runs the hook (if any) for `event`; true if there is none or it succeeded.
    private func hook(_ name: String, tun: String, address: SocketAddress?, event: String) -> Bool {
        guard let command = settings.hook, let program = command.first else { return true }
        var environment: [(name: String, value: String)] = [
            ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ("TUN_DEV_NAME", tun),
            ("TUN_CLIENT_ID", name),
            ("TUN_EVENT", event),
        ]
        if let address {
            environment.append(("TUN_CLIENT_ADDRESS", address.host))
            environment.append(("TUN_CLIENT_PORT", String(address.port)))
        }
        let result = Hook.run(program: program, arguments: Array(command.dropFirst()), environment: environment,
                              timeoutMs: Self.hookTimeoutMs) { line in Log.notice("hook (\(name) \(event)): \(line)") }
        if !result.succeeded { Log.warning("client \(name): hook \(program) (\(event)) \(result)") }
        return result.succeeded
    }
}
