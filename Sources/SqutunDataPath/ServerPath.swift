import SqutunSystem
import Glibc
import CShim
import Shared
import squtun_crypto

// A server's data path, run by its worker. One thread, one loop; the steps:
//
//  1. Wait (epoll: the shared socket, the wake pipe, the helper channel,
//     the status listener, and every client's tun and own socket; the
//     kernel says which are ready, nothing scans them all); timeout = the
//     next tick.
//  2. Sockets → client tuns (Server.receive): the key id names the
//     client, its device opens the datagram and writes it to its tun; an
//     authenticated client without a tun asks the helper for one. A
//     client's own socket gets one batch per wakeup, the shared one
//     (new clients, roaming ones, strangers) a few.
//  3. A client tun → socket (Server.send): that client's device reads,
//     seals and sends to the client's address.
//  4. Tick (Server.tick, every 500 ms at most): keepalives due, idle clients.
//  5. The helper's messages (ServerLink): clients added and forgotten,
//     tuns given or refused; the status listener; signals.

/// What the worker hears from the root helper, decoded (the channel and
/// its format are privilege separation's: this module only sees these).
public enum ServerCommand {
    case add(keyId: UInt32, name: String, key: SecretBytes)
    case forget(keyId: UInt32)
    /// The client's tun and own socket, if any (the descriptors are the receiver's to close).
    case tun(keyId: UInt32, fd: FileDescriptor, name: String, socket: FileDescriptor?)
    case refused(keyId: UInt32, reason: String)
}

/// Why the worker closed a client's tun, as it tells the helper.
public enum ServerClosure { case idle, forgotten, gone }

/// The worker's side of the helper channel, as the server loop needs it.
public protocol ServerLink: AnyObject {
    /// One message (the channel is readable); nil when the helper is gone.
    func receive() -> ServerCommand?
    /// False if the request could not be sent (it is asked again later).
    func requestTun(keyId: UInt32, address: SocketAddress) -> Bool
    func closed(keyId: UInt32, reason: ServerClosure)
}

public final class ServerPath<Cipher: SuiteCipher> {
    private let server: Server<Cipher>
    private let link: ServerLink
    private let poller: Epoll
    private let wake: FileDescriptor
    private let channel: FileDescriptor
    private let control: FileDescriptor?
    private let statusUID: UInt32
    private let log: (Int32, String) -> Void
    private let logLinesDropped: () -> UInt64

    private enum Token: UInt64 { case udp, wake, channel, control }
    /// Clients' tokens: this plus twice the client's slot for its tun, plus one for its socket.
    private static var clientBase: UInt64 { 16 }

    public init(server: Server<Cipher>, link: ServerLink, wake: FileDescriptor, channel: FileDescriptor,
                control: FileDescriptor?, statusUID: UInt32 = 0, log: @escaping (Int32, String) -> Void,
                logLinesDropped: @escaping () -> UInt64) throws(SystemError) {
        self.server = server
        self.link = link
        self.wake = wake
        self.channel = channel
        self.control = control
        self.statusUID = statusUID
        self.log = log
        self.logLinesDropped = logLinesDropped
        poller = try Epoll()
        do throws(Errno) {
            try poller.add(server.net.socket.fd, events: .readable, token: Token.udp.rawValue)
            try poller.add(wake, events: .readable, token: Token.wake.rawValue)
            try poller.add(channel, events: .readable, token: Token.channel.rawValue)
            if let control { try poller.add(control, events: .readable, token: Token.control.rawValue) }
        } catch {
            throw .epollFailed(operation: "epoll_ctl", errno: error)
        }
        server.requestTun = { [link] keyId, address in link.requestTun(keyId: keyId, address: address) }
    }

    public func run() -> DataPathExit {
        while true {
            // 1.
            let n: Int
            do { n = try poller.wait(timeoutMs: server.pollTimeout()) } catch {
                return .fatal("epoll_wait: \(error)")
            }
            // 5. Signals first: SIGTERM must win over a flood.
            if let end = handleSignals() { return end }
            for i in 0..<n {
                let token = poller.token(at: i), events = poller.events(at: i)
                switch token {
                case Token.udp.rawValue: server.receive()  // 2.
                case Token.wake.rawValue: wake.drain()
                case Token.channel.rawValue:
                    guard let command = link.receive() else { return .channelClosed }
                    apply(command)
                case Token.control.rawValue:
                    if let control {
                        _ = ControlSocket.acceptAndReply(listener: control, text: statusText(), allowedUID: statusUID)
                    }
                case let t where (t &- Self.clientBase) & 1 == 1:  // 2., a client's own socket
                    server.receive(slot: Int((t &- Self.clientBase) >> 1))
                default:  // 3.
                    let slot = Int((token - Self.clientBase) >> 1)
                    // Not `isDisjoint(with: [.error, .hangUp])`: that array literal is
                    // an allocation per tun wakeup in a debug build.
                    let gone = events.contains(.error) || events.contains(.hangUp)
                        ? "its tun is gone" : server.send(slot: slot)
                    if let gone, let client = server.clients[slot] {
                        client.device.io.detach()
                        log(LOG_WARNING, "client \(client.name): \(gone); closed it")
                        link.closed(keyId: client.keyId, reason: .gone)
                    }
                }
            }
            // 4.
            for keyId in server.tick() { link.closed(keyId: keyId, reason: .idle) }
        }
    }

    private func apply(_ command: ServerCommand) {
        switch command {
        case let .add(keyId, name, key):
            do { try server.add(keyId: keyId, name: name, key: key) } catch {
                log(LOG_ERR, "client \(name): cannot set up its keys: \(error)")
            }
        case let .forget(keyId):
            if server.forget(keyId: keyId) != nil { link.closed(keyId: keyId, reason: .forgotten) }
        case let .tun(keyId, fd, name, socket):
            // A closed descriptor leaves the epoll set by itself: nothing to remove later.
            let raw = fd, rawSocket = socket
            var own: ClientSocket?
            if let socket {
                do throws(SystemError) { own = ClientSocket(try UDPSocket(adopting: socket)) } catch {
                    log(LOG_WARNING, "client tun \(name): its socket is unusable (\(error)): the shared socket serves it")
                }
            }
            guard let slot = server.attach(keyId: keyId, tun: Tun(adoptingPlain: fd, name: name), socket: own) else {
                link.closed(keyId: keyId, reason: .forgotten)
                return
            }
            let base = Self.clientBase + 2 * UInt64(slot)
            do throws(Errno) {
                try poller.add(raw, events: .readable, token: base)
                if let rawSocket, server.clients[slot]?.device.io.socket != nil {
                    try poller.add(rawSocket, events: .readable, token: base + 1)
                }
            } catch {
                server.clients[slot]?.device.io.detach()
                log(LOG_ERR, "tun \(name): cannot watch it: \(error)")
                link.closed(keyId: keyId, reason: .gone)
            }
        case let .refused(keyId, _):
            // The helper logged why.
            server.refused(keyId: keyId)
        }
    }

    private func handleSignals() -> DataPathExit? {
        let sigs = squtun_take_signals()
        if sigs == 0 { return nil }
        for s in [SIGTERM, SIGINT] where sigs & (1 << UInt64(s)) != 0 { return .signal(s) }
        if sigs & (1 << UInt64(SIGUSR1)) != 0 {
            for line in statusText().split(separator: "\n") { log(LOG_INFO, String(line)) }
        }
        return nil
    }

    public func statusText() -> String { server.statusText(logLinesDropped: logLinesDropped()) }
}

/// A server's data path for the configured suite, chosen once: as
/// `DataPath`'s `Engine`, the switch is here, in this module, so that
/// `Server` and `ServerPath` run code compiled for that suite (made in
/// another module, their generic code would run unspecialised: every
/// client visited through witness tables and retains).
public final class ServerDataPath {
    public struct Settings {
        public var start: RunStart
        public var formerSessions: [UInt64]
        public var skewSeconds: Int
        public var keepaliveMs: UInt64
        public var idleTimeoutMs: UInt64

        public init(start: RunStart, formerSessions: [UInt64], skewSeconds: Int, keepaliveMs: UInt64,
                    idleTimeoutMs: UInt64) {
            self.start = start
            self.formerSessions = formerSessions
            self.skewSeconds = skewSeconds
            self.keepaliveMs = keepaliveMs
            self.idleTimeoutMs = idleTimeoutMs
        }
    }

    private enum Engine {
        case aes256CBCHMACSHA256(ServerPath<PacketCipher>)
        case aes256GCM(ServerPath<AES256GCMCipher>)
        case chacha20Poly1305(ServerPath<ChaCha20Poly1305Cipher>)
    }

    private let engine: Engine

    /// OpenSSL's algorithms are fetched here: before the chroot.
    public init(suite: SuiteID, settings: Settings, udp: consuming UDPSocket, link: ServerLink, wake: FileDescriptor,
                channel: FileDescriptor, control: FileDescriptor?, log: @escaping (Int32, String) -> Void,
                logLinesDropped: @escaping () -> UInt64) throws {
        let net = SharedSocket(udp)
        func path<Cipher: SuiteCipher>(_: Cipher.Type) throws -> ServerPath<Cipher> {
            let server = try Server<Cipher>(net: net, start: settings.start, formerSessions: settings.formerSessions,
                                            skewSeconds: settings.skewSeconds, keepaliveMs: settings.keepaliveMs,
                                            idleTimeoutMs: settings.idleTimeoutMs, log: log)
            return try ServerPath(server: server, link: link, wake: wake, channel: channel, control: control, log: log,
                                  logLinesDropped: logLinesDropped)
        }
        switch suite {
        case .aes256CBCHMACSHA256: engine = .aes256CBCHMACSHA256(try path(PacketCipher.self))
        case .aes256GCM: engine = .aes256GCM(try path(AES256GCMCipher.self))
        case .chacha20Poly1305: engine = .chacha20Poly1305(try path(ChaCha20Poly1305Cipher.self))
        }
    }

    public func run() -> DataPathExit {
        switch engine {
        case .aes256CBCHMACSHA256(let p): p.run()
        case .aes256GCM(let p): p.run()
        case .chacha20Poly1305(let p): p.run()
        }
    }
}
