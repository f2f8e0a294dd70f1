import Glibc
import Shared
import SqutunSystem
import squtun_crypto

/// Runs the swarm with the suite `options` names.
func runSwarm(_ options: RunOptions) throws {
    switch options.suite {
    case .aes256CBCHMACSHA256: try Swarm<PacketCipher>(options).run()
    case .aes256GCM: try Swarm<AES256GCMCipher>(options).run()
    case .chacha20Poly1305: try Swarm<ChaCha20Poly1305Cipher>(options).run()
    }
}

/// The simulated clients and their one event loop (epoll over every
/// client's socket and the signal wake pipe), in three phases:
/// connect, one round of echo requests, idle.
final class Swarm<Cipher: SuiteCipher> {
    private let options: RunOptions
    private let clients: [SimClient<Cipher>]
    private let poller: Epoll
    private let signals: FileDescriptor
    private let buffer: UnsafeMutableRawBufferPointer
    private var stopped = false
    /// Set by the phase running: what an echo reply means now.
    private var onReply: (SimClient<Cipher>, UInt64) -> Void = { _, _ in }

    private static var signalToken: UInt64 { UInt64.max }

    init(_ options: RunOptions) throws {
        self.options = options
        // A socket per client: more than the usual 1024 descriptors.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let start = try RunStart.now()
        let algorithms = try CryptoAlgorithms()
        var made: [SimClient<Cipher>] = []
        for i in 1...options.count {
            made.append(try SimClient(index: i, peers: options.peers, start: start, algorithms: algorithms,
                                      bind: options.bind, server: options.server))
        }
        clients = made
        // SIGTERM and SIGINT (the project's handlers) wake the loop through a pipe.
        signals = try Signals.install()
        poller = try Epoll()
        try poller.add(signals, events: .readable, token: Self.signalToken)
        for (slot, client) in clients.enumerated() {
            try poller.add(FileDescriptor(rawValue: client.fd), events: .readable, token: UInt64(slot))
        }
        buffer = .allocate(byteCount: Wire.maxPacketLength + 64, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        signals.close()
    }

    func run() throws {
        emit("clients: \(clients.count)")
        connect()
        if !stopped { echoRound() }
        if !stopped { idle() }
        summary()
    }

    /// Waits at most `timeoutMs` once and handles what is ready.
    private func pump(timeoutMs: Int32) {
        guard let n = try? poller.wait(timeoutMs: timeoutMs) else { return }
        for i in 0..<n {
            let token = poller.token(at: i)
            if token == Self.signalToken {
                signals.drain()
                let taken = Signals.take()
                if Signals.has(taken, SIGTERM) || Signals.has(taken, SIGINT) { stopped = true }
                continue
            }
            let client = clients[Int(token)]
            client.receive(buffer) { rtt in onReply(client, rtt) }
        }
    }

    // MARK: Phases

    /// Each client in turn — all at once, or `perSecond` a second —
    /// sends a keepalive (the server asks its helper for the client's tun
    /// on it), then an echo request to the server's side of its tun, again
    /// every `retryMs` until one is answered (the first ones arrive before
    /// the tun exists, or are refused by the helper's rate limit, and are
    /// dropped). The figures: the time until every client is answered, and
    /// each client's own wait from its start.
    private func connect() {
        let start = monotonicNs()
        var answered = 0, started = 0
        var rtts: [Double] = []
        onReply = { client, rtt in
            guard client.connectedNs == nil else { return }
            client.connectedNs = monotonicNs()
            answered += 1
            rtts.append(Double(rtt) / 1e6)
        }
        let spacingNs = options.perSecond > 0 ? 1_000_000_000 / options.perSecond : 0
        let retryNs = options.retryMs * 1_000_000
        var nextProgress = start + 5_000_000_000
        while answered < clients.count, !stopped, monotonicNs() - start < options.connectTimeoutMs * 1_000_000 {
            var now = monotonicNs()
            while started < clients.count, now >= start + UInt64(started) * spacingNs {
                let client = clients[started]
                client.startedNs = now
                client.sendKeepalive(buffer, nowNs: now)
                client.sendEcho(buffer, nowNs: now)
                started += 1
                now = monotonicNs()
            }
            for client in clients[..<started] where client.connectedNs == nil && now - client.lastSentNs >= retryNs {
                client.sendEcho(buffer, nowNs: now)
            }
            if now >= nextProgress {
                emit("connect: \(answered) of \(clients.count) answered after \(Figures.seconds(now - start))")
                nextProgress += 5_000_000_000
            }
            pump(timeoutMs: spacingNs > 0 ? 5 : 20)
        }
        let done = clients.compactMap(\.connectedNs).max() ?? start
        let waits = clients.compactMap { c in c.connectedNs.map { Double($0 - c.startedNs!) / 1e9 } }
        Figures.line("connect-answered", answered)
        Figures.line("connect-seconds", Double(done - start) / 1e9)
        Figures.line("connect-client-p50-seconds", Figures.percentile(waits, 50))
        Figures.line("connect-client-p90-seconds", Figures.percentile(waits, 90))
        Figures.line("connect-first-rtt-p50-ms", Figures.percentile(rtts, 50))
    }

    /// One echo request per client, 2 ms apart, every tun up: the round
    /// trip through the server with all the clients connected.
    private func echoRound() {
        var rtts: [Double] = []
        onReply = { _, rtt in rtts.append(Double(rtt) / 1e6) }
        let gapNs: UInt64 = 2_000_000
        var next = monotonicNs()
        for client in clients where !stopped {
            while monotonicNs() < next, !stopped { pump(timeoutMs: 1) }
            next += gapNs
            client.sendEcho(buffer, nowNs: monotonicNs())
        }
        let end = monotonicNs() + 2_000_000_000
        while rtts.count < clients.count, !stopped, monotonicNs() < end { pump(timeoutMs: 20) }
        Figures.line("echo-answered", rtts.count)
        Figures.line("echo-rtt-p50-ms", Figures.percentile(rtts, 50))
        Figures.line("echo-rtt-p99-ms", Figures.percentile(rtts, 99))
    }

    /// Keepalives only, each client every `keepaliveMs`, their phases
    /// spread evenly, until a signal or `idleMs`.
    private func idle() {
        onReply = { _, _ in }
        let start = monotonicNs()
        let periodNs = options.keepaliveMs * 1_000_000
        var due = clients.indices.map { start + UInt64($0) * periodNs / UInt64(clients.count) }
        emit("idle: started")
        while !stopped, options.idleMs == 0 || monotonicNs() - start < options.idleMs * 1_000_000 {
            let now = monotonicNs()
            var soonest = now + 1_000_000_000
            for (slot, client) in clients.enumerated() {
                if due[slot] <= now {
                    client.sendKeepalive(buffer, nowNs: now)
                    due[slot] += periodNs
                }
                soonest = min(soonest, due[slot])
            }
            pump(timeoutMs: Int32(clamping: (soonest > now ? soonest - now : 0) / 1_000_000 + 1))
        }
        Figures.line("idle-seconds", Double(monotonicNs() - start) / 1e9, digits: 1)
    }

    private func summary() {
        Figures.line("keepalives-sent", clients.reduce(0) { $0 + $1.keepalivesSent })
        Figures.line("keepalives-received", clients.reduce(0) { $0 + $1.keepalivesReceived })
        Figures.line("replies-received", clients.reduce(0) { $0 + $1.repliesReceived })
        Figures.line("refused-by-opener", clients.reduce(0) { $0 + $1.refused })
        Figures.line("send-failures", clients.reduce(0) { $0 + $1.sendFailures })
    }
}
