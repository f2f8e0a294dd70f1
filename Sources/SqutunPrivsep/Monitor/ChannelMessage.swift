import SqutunSystem
import Shared
#if canImport(Glibc)
import Glibc
#endif

// The monitor's vocabulary: what the worker may ask the root helper, and
// what the helper answers. The byte format is in ChannelCodec.swift (pure
// functions, fuzzed); the socket is Channel.swift; which request is
// allowed when is the helper's table (MonitorTable.swift).
//
// The worker asks, the helper answers: `hello` → `config`, `keyRequest` →
// `key`, `fdsRequest` → `fds`; `ready` and `log` take no answer.
// Server mode: the helper tells the worker its clients (`clientKey` for
// each client of the peers directory, `clientForget` for one gone from
// it); the worker asks for an authenticated client's tun
// (`clientTunRequest` → `clientTun` with the tun's descriptor and, as a
// rule, the client's own UDP socket's, or
// `clientRefused`) and says when it closed one (`clientClosed`).

/// Who may send a message type. A receiver rejects the other side's types.
public enum ChannelSender: Sendable { case helper, worker }

/// The closed set of message types (the first byte of each message). To
/// add a request (e.g. a per-client tun): a case here with its `sender`,
/// `bodyLength` and `fdCount`, a `ChannelMessage` case, its encode/decode
/// branch in ChannelCodec.swift, and its row in the helper's table.
public enum ChannelMessageType: UInt8, CaseIterable, Sendable {
    // Answers, helper → worker.
    case config = 1
    case key = 2
    case fds = 3
    // Requests, worker → helper.
    case ready = 4
    case log = 5
    case hello = 6
    case keyRequest = 7
    case fdsRequest = 8
    // Server mode. Helper → worker.
    case clientKey = 9
    case clientForget = 10
    case clientTun = 11
    case clientRefused = 12
    // Worker → helper.
    case clientTunRequest = 13
    case clientClosed = 14

    public var sender: ChannelSender {
        switch self {
        case .config, .key, .fds, .clientKey, .clientForget, .clientTun, .clientRefused: return .helper
        case .ready, .log, .hello, .keyRequest, .fdsRequest, .clientTunRequest, .clientClosed: return .worker
        }
    }

    /// Allowed body lengths (after the type byte). `fds` is 1 count byte
    /// plus one role byte per descriptor; the count is checked against
    /// the descriptors that came with it.
    public var bodyLength: ClosedRange<Int> {
        switch self {
        case .config: return ChannelCodec.versionBytes + WorkerConfig.encodedSize...ChannelCodec.versionBytes + WorkerConfig.encodedSize
        case .key: return ChannelCodec.keyBytes...ChannelCodec.keyBytes
        case .fds: return 2...(1 + ChannelCodec.maxFDs)
        case .ready, .keyRequest, .fdsRequest: return 0...0
        case .hello: return ChannelCodec.versionBytes...ChannelCodec.versionBytes
        case .log: return 2...(1 + ChannelCodec.maxLogBytes)
        // key id 4, identifier 32 (NUL-padded), tunnel key 32.
        case .clientKey: return 68...68
        case .clientForget: return 4...4
        // key id 4, interface name 16 (NUL-padded).
        case .clientTun: return 20...20
        // key id 4, reason 1.
        case .clientRefused, .clientClosed: return 5...5
        // key id 4, the client's address (the config's 28-byte peer encoding).
        case .clientTunRequest: return 32...32
        }
    }

    /// Descriptors that must arrive with it (SCM_RIGHTS): exactly this
    /// many, or for `fds` exactly as many as its count byte declares.
    public var fdCount: ClosedRange<Int> {
        switch self {
        case .fds: return 1...ChannelCodec.maxFDs
        case .clientTun: return 1...2
        default: return 0...0
        }
    }
}

/// The level of a forwarded log line (wire values 0...3). The helper maps
/// it back to a syslog priority (Supervisor.swift: `syslogPriority`).
public enum LogLevel: UInt8, Sendable, CaseIterable {
    case error = 0, warning = 1, info = 2, debug = 3

    /// From a syslog priority: LOG_EMERG...LOG_ERR → error, LOG_WARNING →
    /// warning, LOG_NOTICE and LOG_INFO → info, LOG_DEBUG → debug.
    public init(syslog priority: Int32) {
        switch priority {
        case ...3: self = .error
        case 4: self = .warning
        case 5, 6: self = .info
        default: self = .debug
        }
    }
}

/// What a descriptor in an `fds` answer is for (its role byte). Each role
/// appears at most once in one answer.
public enum PassedFDRole: UInt8, CaseIterable, Sendable {
    case tun = 1
    case udp = 2
    /// The root-only status socket's listener.
    case control = 3
}

/// One descriptor of an `fds` answer.
public struct PassedFD: Equatable, Sendable {
    public var role: PassedFDRole
    public var fd: FileDescriptor
    public init(_ role: PassedFDRole, _ fd: FileDescriptor) {
        self.role = role
        self.fd = fd
    }
}

extension Array where Element == PassedFD {
    /// Closes every descriptor of the list (those not handed on).
    func closeAll() { forEach { $0.fd.close() } }
}

/// One message. `key` owns a wiped-on-release buffer; the descriptors of
/// `fds` belong to the receiver (it must use or close them).
public enum ChannelMessage: Sendable {
    /// The worker's first request, with the monitor version it speaks.
    case hello(version: UInt32)
    /// The answer to `hello`; sent as `ChannelCodec.configVersion` + fields.
    case config(WorkerConfig)
    case keyRequest
    case key(SecretBytes)
    case fdsRequest
    case fds([PassedFD])
    case ready
    case log(level: LogLevel, text: String)
    /// A client of the peers directory: its key id, identifier and tunnel key.
    case clientKey(keyId: UInt32, name: String, key: SecretBytes)
    case clientForget(keyId: UInt32)
    /// The client's tun (its name and descriptor) and its own UDP socket
    /// (connected to the client; nil if the helper could not make it);
    /// the descriptors are the receiver's.
    case clientTun(keyId: UInt32, interface: String, fd: FileDescriptor, socket: FileDescriptor?)
    case clientRefused(keyId: UInt32, reason: ClientRefusal)
    /// A client authenticated from `address` has no tun yet.
    case clientTunRequest(keyId: UInt32, address: SocketAddress)
    case clientClosed(keyId: UInt32, reason: ClientClosure)

    public var type: ChannelMessageType {
        switch self {
        case .hello: return .hello
        case .config: return .config
        case .keyRequest: return .keyRequest
        case .key: return .key
        case .fdsRequest: return .fdsRequest
        case .fds: return .fds
        case .ready: return .ready
        case .log: return .log
        case .clientKey: return .clientKey
        case .clientForget: return .clientForget
        case .clientTun: return .clientTun
        case .clientRefused: return .clientRefused
        case .clientTunRequest: return .clientTunRequest
        case .clientClosed: return .clientClosed
        }
    }

    /// The descriptors to send as SCM_RIGHTS, in order.
    public var fileDescriptors: [FileDescriptor] {
        if case let .fds(list) = self { return list.map(\.fd) }
        if case let .clientTun(_, _, fd, socket) = self { return [fd] + (socket.map { [$0] } ?? []) }
        return []
    }
}

extension ChannelMessage: Equatable {
    public static func == (a: ChannelMessage, b: ChannelMessage) -> Bool {
        switch (a, b) {
        case let (.hello(x), .hello(y)): return x == y
        case let (.config(x), .config(y)): return x == y
        case let (.key(x), .key(y)):
            return x.withUnsafeBytes { xb in y.withUnsafeBytes { yb in xb.elementsEqual(yb) } }
        case let (.fds(x), .fds(y)): return x == y
        case (.keyRequest, .keyRequest), (.fdsRequest, .fdsRequest), (.ready, .ready): return true
        case let (.log(l1, t1), .log(l2, t2)): return l1 == l2 && t1 == t2
        case let (.clientKey(k1, n1, s1), .clientKey(k2, n2, s2)):
            return k1 == k2 && n1 == n2 && s1.withUnsafeBytes { x in s2.withUnsafeBytes { y in x.elementsEqual(y) } }
        case let (.clientForget(x), .clientForget(y)): return x == y
        case let (.clientTun(k1, i1, f1, s1), .clientTun(k2, i2, f2, s2)):
            return k1 == k2 && i1 == i2 && f1 == f2 && s1 == s2
        case let (.clientRefused(k1, r1), .clientRefused(k2, r2)): return k1 == k2 && r1 == r2
        case let (.clientTunRequest(k1, a1), .clientTunRequest(k2, a2)): return k1 == k2 && a1 == a2
        case let (.clientClosed(k1, r1), .clientClosed(k2, r2)): return k1 == k2 && r1 == r2
        default: return false
        }
    }
}

/// Why the helper gave an authenticated client no tun (`clientRefused`).
public enum ClientRefusal: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// No such client in the peers directory (any more).
    case unknown = 1
    /// It has a tun already.
    case hasTun = 2
    /// --max-clients tuns exist.
    case tooMany = 3
    /// Tuns are being made faster than the helper allows.
    case rateLimited = 4
    /// The device could not be made (a client's own socket that cannot be
    /// made refuses nothing: the shared socket serves the client).
    case deviceFailed = 5
    /// The hook failed (the device was removed again).
    case hookFailed = 6

    public var description: String {
        switch self {
        case .unknown: "not a client of the peers directory"
        case .hasTun: "it has a tun already"
        case .tooMany: "as many client tuns as --max-clients allows exist"
        case .rateLimited: "tuns are being asked for too fast"
        case .deviceFailed: "the tun could not be made"
        case .hookFailed: "the hook failed"
        }
    }
}

/// Why the worker closed a client's tun (`clientClosed`).
public enum ClientClosure: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// Nothing authenticated for --idle-timeout seconds.
    case idle = 1
    /// The helper said `clientForget`.
    case forgotten = 2
    /// Its tun went away (deleted under the worker).
    case gone = 3

    public var description: String {
        switch self {
        case .idle: "idle"
        case .forgotten: "forgotten"
        case .gone: "its tun is gone"
        }
    }
}

/// What the helper tells the worker before it starts (message `config`).
public struct WorkerConfig: Equatable, Sendable {
    /// This side's session id (PROTOCOL.md), chosen by the helper.
    public var session: UInt64
    public var startTimeMs: UInt64
    public var skewSeconds: UInt32
    public var keepaliveSeconds: UInt32
    /// Whom the worker becomes, and where it is chrooted (absolute). Always
    /// used: the worker is only ever started by the root helper, so it
    /// always drops privileges (the single process hardens itself, Solo).
    public var uid: UInt32
    public var gid: UInt32
    /// Flag bit 1: a peer was given with -p (already resolved by the helper).
    public var peer: SocketAddress?
    public var chrootPath: String
    public var interface: String
    /// This end's former sessions (at most `maxFormerSessions`).
    public var formerSessions: [UInt64] = []
    /// The cipher suite the data path runs (`--cipher`).
    public var suite: SuiteID = .defaultSuite
    /// Flag bit 2: a server (its clients come as `clientKey` messages).
    public var server = false
    /// Flag bit 3: TAP mode (`--tap`): the device is a TAP device, the
    /// datagrams carry Ethernet frames. Never with `server`.
    public var tap = false
    /// A client's own key id (`--id`); 0 between point-to-point peers and
    /// at a server.
    public var keyId: UInt32 = 0
    /// Server: forget a client after this long without an authenticated
    /// datagram (0: never).
    public var idleTimeoutSeconds: UInt32 = 0
    /// Server: the most clients with a tun at once.
    public var maxClients: UInt32 = 0

    /// The fields of configuration version 3, after the version:
    /// 8+8+4+4 + flags 4 + uid 4 + gid 4 + peer 28 + chroot 256 + interface 16
    /// + former-session count 4 + 32 former sessions (unused ones zero)
    /// + suite 1 + 3 zero bytes + key id 4 + idle timeout 4 + max clients 4.
    public static let encodedSize = 36 + peerBytes + chrootBytes + interfaceBytes + 4 + 8 * maxFormerSessions + 4 + 12
    public static let maxFormerSessions = 32
    public static let peerBytes = 28
    public static let chrootBytes = 256
    public static let interfaceBytes = 16

    public init(session: UInt64, startTimeMs: UInt64, skewSeconds: UInt32, keepaliveSeconds: UInt32,
                uid: UInt32, gid: UInt32, peer: SocketAddress?, chrootPath: String,
                interface: String, formerSessions: [UInt64] = [], suite: SuiteID = .defaultSuite) {
        self.session = session
        self.startTimeMs = startTimeMs
        self.skewSeconds = skewSeconds
        self.keepaliveSeconds = keepaliveSeconds
        self.uid = uid
        self.gid = gid
        self.peer = peer
        self.chrootPath = chrootPath
        self.interface = interface
        self.formerSessions = formerSessions
        self.suite = suite
    }

    /// Bit 0 is unused and refused if set (it once said "drop privileges",
    /// which every config says now); bit 1 is the peer's.
    public static let flagPeer: UInt32 = 1 << 1
    public static let flagServer: UInt32 = 1 << 2
    public static let flagTAP: UInt32 = 1 << 3
    public static let knownFlags = flagPeer | flagServer | flagTAP
}

/// Why a message was refused. Any of these makes the receiver exit.
public enum ChannelFault: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case unknownType(UInt8)
    case wrongLength(type: ChannelMessageType, got: Int)
    case wrongFDCount(type: ChannelMessageType, got: Int)
    case truncated
    case wrongSender(type: ChannelMessageType)
    case badField(type: ChannelMessageType, field: String)
    /// A versioned message of a version this build does not read.
    case unsupportedVersion(type: ChannelMessageType, got: UInt32, supported: UInt32)

    public var description: String {
        switch self {
        case .empty: return "empty message"
        case let .unknownType(byte): return "unknown message type \(byte)"
        case let .wrongLength(type, got):
            let range = type.bodyLength
            let want = range.count == 1 ? "\(range.lowerBound)" : "\(range.lowerBound)...\(range.upperBound)"
            return "\(type) message has a \(got)-byte body, expected \(want)"
        case let .wrongFDCount(type, got):
            let range = type.fdCount
            let want = range.count == 1 ? "\(range.lowerBound)" : "as many as it declares"
            return "\(type) message came with \(got) file descriptors, expected \(want)"
        case .truncated: return "message or its file descriptors were truncated"
        case let .wrongSender(type): return "\(type) message from the wrong side"
        case let .badField(type, field): return "\(type) message: \(field)"
        case let .unsupportedVersion(type, got, supported):
            return "\(type) message of version \(got); this squtun reads version \(supported)"
        }
    }
}
