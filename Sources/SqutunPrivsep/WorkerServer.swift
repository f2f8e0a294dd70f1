import SqutunSystem
import SqutunDataPath
import Glibc
import Shared
import squtun_crypto

/// A server's worker (Worker.swift does steps 1–6 for a point-to-point
/// end): the same setup and privilege drop, then the server's data path
/// (ServerPath). It asks for no key and gets no tun at setup: its
/// clients' keys come after `ready`, one `clientKey` each, and a client's
/// tun when it asks for it (`clientTunRequest`).
enum WorkerServer {
    static func run(_ channel: borrowing Channel, config: WorkerConfig) throws -> Int32 {
        let passed = try ask(channel, .fdsRequest) { if case .fds(let list) = $0 { list } else { nil } }
        func take(_ role: PassedFDRole) -> FileDescriptor? { passed.first { $0.role == role }?.fd }
        guard let udpFD = take(.udp) else {
            passed.closeAll()
            throw PrivsepError.missingDescriptor(.udp)
        }
        let controlFD = take(.control)
        let udp = try UDPSocket(adopting: udpFD)
        let wake = try Signals.install()
        // OpenSSL before the chroot: the algorithms are fetched here, once.
        let path = try ServerDataPath(
            suite: config.suite,
            settings: .init(start: config.runStart, formerSessions: config.formerSessions,
                            skewSeconds: Int(config.skewSeconds), keepaliveMs: UInt64(config.keepaliveSeconds) * 1000,
                            idleTimeoutMs: UInt64(config.idleTimeoutSeconds) * 1000),
            udp: udp, link: ChannelServerLink(channel.port), wake: wake, channel: channel.fd, control: controlFD,
            log: Log.write, logLinesDropped: { Log.droppedLines })
        try Privileges.dropPrivileges(chroot: config.chrootPath, uid: config.uid, gid: config.gid)
        try Seccomp.install(mode: .serverWorker)
        try channel.send(.ready)
        #if DEBUG
        WorkerFault.actServer(port: channel.port)
        #endif
        return DataPath.exitStatus(path.run())
    }
}

/// The server loop's side of the helper channel: the helper's messages as
/// `ServerCommand`s; requests and word of closed tuns back. A message of
/// any other kind breaks the protocol: the loop ends.
final class ChannelServerLink: ServerLink {
    private let port: Channel.Port

    init(_ port: Channel.Port) { self.port = port }

    func receive() -> ServerCommand? {
        let message: ChannelMessage
        do { message = try port.receive(from: .helper) } catch .channelClosed {
            return nil
        } catch {
            Log.error("worker: \(error)")
            return nil
        }
        #if DEBUG
        WorkerFault.received(message, port: port)
        #endif
        switch message {
        case let .clientKey(keyId, name, key): return .add(keyId: keyId, name: name, key: key)
        case let .clientForget(keyId): return .forget(keyId: keyId)
        case let .clientTun(keyId, interface, fd, socket):
            #if DEBUG
            let socket = WorkerFault.socketForDataPath(socket)
            #endif
            return .tun(keyId: keyId, fd: fd, name: interface, socket: socket)
        case let .clientRefused(keyId, reason): return .refused(keyId: keyId, reason: "\(reason)")
        default:
            message.fileDescriptors.forEach { $0.close() }
            Log.error("worker: unexpected \(message.type) message from the helper")
            return nil
        }
    }

    func requestTun(keyId: UInt32, address: SocketAddress) -> Bool {
        do {
            try port.send(.clientTunRequest(keyId: keyId, address: address))
            return true
        } catch {
            Log.warning("worker: cannot ask the helper for a tun now (\(error)); asking again later")
            return false
        }
    }

    func closed(keyId: UInt32, reason: ServerClosure) {
        let closure: ClientClosure = switch reason {
        case .idle: .idle
        case .forgotten: .forgotten
        case .gone: .gone
        }
        do { try port.send(.clientClosed(keyId: keyId, reason: closure)) } catch {
            Log.error("worker: cannot tell the helper a tun closed: \(error)")
        }
    }
}
