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

    public var sender: ChannelSender {
        switch self {
        case .config, .key, .fds: return .helper
        case .ready, .log, .hello, .keyRequest, .fdsRequest: return .worker
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
        }
    }

    /// Descriptors that must arrive with it (SCM_RIGHTS): exactly this
    /// many, or for `fds` exactly as many as its count byte declares.
    public var fdCount: ClosedRange<Int> { self == .fds ? 1...ChannelCodec.maxFDs : 0...0 }
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
        }
    }

    /// The descriptors to send as SCM_RIGHTS, in order.
    public var fileDescriptors: [FileDescriptor] {
        if case let .fds(list) = self { return list.map(\.fd) }
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
        default: return false
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

    /// The fields of configuration version 2, after the version:
    /// 8+8+4+4 + flags 4 + uid 4 + gid 4 + peer 28 + chroot 256 + interface 16
    /// + former-session count 4 + 32 former sessions (unused ones zero)
    /// + suite 1 + 3 zero bytes.
    public static let encodedSize = 36 + peerBytes + chrootBytes + interfaceBytes + 4 + 8 * maxFormerSessions + 4
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
    public static let knownFlags = flagPeer
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
