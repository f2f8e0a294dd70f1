import SqutunSystem
import Shared
#if canImport(Glibc)
import Glibc
#endif

// The helper<->worker messages and their byte format: pure functions over
// buffers, separate from the socket (Channel.swift), so they can be fuzzed.
//
// Format: 1 type byte, then a body whose length is fixed per type (checked
// exactly) except `log` (1 level byte + 1...1024 bytes of UTF-8). Integers
// are little-endian. Helper and worker are the same binary, so there is no
// version field: a new message is a new type byte with its own length.

/// Who may send a message type. A receiver rejects the other side's types.
public enum ChannelSender: Sendable { case helper, worker }

/// The closed set of message types. To add one (e.g. a per-client tun
/// request): a new case, its `sender`, `bodyLength`, `fdCount`, a
/// `ChannelMessage` case, and an encode/decode branch.
public enum ChannelMessageType: UInt8, CaseIterable, Sendable {
    case config = 1
    case key = 2
    case fds = 3
    case ready = 4
    case log = 5

    public var sender: ChannelSender {
        switch self {
        case .config, .key, .fds: return .helper
        case .ready, .log: return .worker
        }
    }

    /// Allowed body lengths (after the type byte).
    public var bodyLength: ClosedRange<Int> {
        switch self {
        case .config: return WorkerConfig.encodedSize...WorkerConfig.encodedSize
        case .key: return ChannelCodec.keyBytes...ChannelCodec.keyBytes
        case .fds: return 1...1
        case .ready: return 0...0
        case .log: return 2...(1 + ChannelCodec.maxLogBytes)
        }
    }

    /// Descriptors that must arrive with it (SCM_RIGHTS), exactly.
    public var fdCount: Int { self == .fds ? 3 : 0 }
}

/// The level of a forwarded log line (wire values 0...3). The helper maps
/// it back to a syslog priority (Helper.swift: `syslogPriority`).
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

/// What the helper tells the worker before it starts (message `config`).
public struct WorkerConfig: Equatable, Sendable {
    /// This side's session id (PROTOCOL.md), chosen by the helper.
    public var session: UInt64
    public var startTimeMs: UInt64
    public var skewSeconds: UInt32
    public var keepaliveSeconds: UInt32
    /// Flag bit 0: chroot + setuid wanted (false in the non-root mode).
    public var dropPrivileges: Bool
    public var uid: UInt32
    public var gid: UInt32
    /// Flag bit 1: a peer was given with -p (already resolved by the helper).
    public var peer: SocketAddress?
    public var chrootPath: String
    public var interface: String
    /// This end's former sessions (at most `maxFormerSessions`).
    public var formerSessions: [UInt64] = []

    /// 8+8+4+4 + flags 4 + uid 4 + gid 4 + peer 28 + chroot 256 + interface 16
    /// + former-session count 4 + 32 former sessions (unused ones zero).
    public static let encodedSize = 336 + 4 + 8 * maxFormerSessions
    public static let maxFormerSessions = 32
    public static let peerBytes = 28
    public static let chrootBytes = 256
    public static let interfaceBytes = 16

    public init(session: UInt64, startTimeMs: UInt64, skewSeconds: UInt32, keepaliveSeconds: UInt32,
                dropPrivileges: Bool, uid: UInt32, gid: UInt32, peer: SocketAddress?, chrootPath: String,
                interface: String, formerSessions: [UInt64] = []) {
        self.session = session
        self.startTimeMs = startTimeMs
        self.skewSeconds = skewSeconds
        self.keepaliveSeconds = keepaliveSeconds
        self.dropPrivileges = dropPrivileges
        self.uid = uid
        self.gid = gid
        self.peer = peer
        self.chrootPath = chrootPath
        self.interface = interface
        self.formerSessions = formerSessions
    }

    public static let flagDropPrivileges: UInt32 = 1 << 0
    public static let flagPeer: UInt32 = 1 << 1
    public static let knownFlags = flagDropPrivileges | flagPeer
}

/// One message. `key` owns a wiped-on-release buffer; `fds` owns three
/// descriptors (the receiver must use or close them).
public enum ChannelMessage: Sendable {
    case config(WorkerConfig)
    case key(SecretBytes)
    case fds(tun: FileDescriptor, udp: FileDescriptor, control: FileDescriptor)
    case ready
    case log(level: LogLevel, text: String)

    public var type: ChannelMessageType {
        switch self {
        case .config: return .config
        case .key: return .key
        case .fds: return .fds
        case .ready: return .ready
        case .log: return .log
        }
    }

    /// The descriptors to send as SCM_RIGHTS, in order.
    public var fileDescriptors: [FileDescriptor] {
        if case let .fds(tun, udp, control) = self { return [tun, udp, control] }
        return []
    }
}

extension ChannelMessage: Equatable {
    public static func == (a: ChannelMessage, b: ChannelMessage) -> Bool {
        switch (a, b) {
        case let (.config(x), .config(y)): return x == y
        case let (.key(x), .key(y)):
            return x.withUnsafeBytes { xb in y.withUnsafeBytes { yb in xb.elementsEqual(yb) } }
        case let (.fds(a1, a2, a3), .fds(b1, b2, b3)): return a1 == b1 && a2 == b2 && a3 == b3
        case (.ready, .ready): return true
        case let (.log(l1, t1), .log(l2, t2)): return l1 == l2 && t1 == t2
        default: return false
        }
    }
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

    public var description: String {
        switch self {
        case .empty: return "empty message"
        case let .unknownType(byte): return "unknown message type \(byte)"
        case let .wrongLength(type, got):
            let range = type.bodyLength
            let want = range.count == 1 ? "\(range.lowerBound)" : "\(range.lowerBound)...\(range.upperBound)"
            return "\(type) message has a \(got)-byte body, expected \(want)"
        case let .wrongFDCount(type, got):
            return "\(type) message came with \(got) file descriptors, expected \(type.fdCount)"
        case .truncated: return "message or its file descriptors were truncated"
        case let .wrongSender(type): return "\(type) message from the wrong side"
        case let .badField(type, field): return "\(type) message: \(field)"
        }
    }
}

public enum ChannelCodec {
    public static let keyBytes = 32
    public static let maxLogBytes = 1024
    /// The largest valid message (a full log line); receive buffers are one
    /// byte larger so that anything longer shows up as MSG_TRUNC.
    public static let maxMessageBytes = 1 + (ChannelMessageType.allCases.map { $0.bodyLength.upperBound }.max() ?? 0)

    // MARK: Encode

    /// Writes `message` into `buffer` (at least `maxMessageBytes`) and
    /// returns the length. A `log` text is cut to 1024 bytes at a character
    /// boundary and its control characters become spaces, so that the
    /// receiver's check never fails on our own output.
    public static func encode(_ message: ChannelMessage, into buffer: UnsafeMutableRawBufferPointer) throws(ChannelFault) -> Int {
        precondition(buffer.count >= maxMessageBytes)
        var w = Writer(buffer: buffer)
        w.u8(message.type.rawValue)
        switch message {
        case let .config(config):
            try encodeConfig(config, into: &w)
        case let .key(secret):
            guard secret.count == keyBytes else { throw .wrongLength(type: .key, got: secret.count) }
            secret.withUnsafeBytes { w.bytes($0) }
        case .fds:
            w.u8(UInt8(ChannelMessageType.fds.fdCount))
        case .ready:
            break
        case let .log(level, text):
            w.u8(level.rawValue)
            let start = w.offset
            for scalar in text.unicodeScalars {
                let clean = isControl(scalar) ? Unicode.Scalar(0x20)! : scalar
                let utf8 = UTF8.encode(clean)!
                if w.offset - start + utf8.count > maxLogBytes { break }
                for byte in utf8 { w.u8(byte) }
            }
            if w.offset == start { throw .badField(type: .log, field: "empty text") }
        }
        return w.offset
    }

    private static func encodeConfig(_ c: WorkerConfig, into w: inout Writer) throws(ChannelFault) {
        w.u64(c.session)
        w.u64(c.startTimeMs)
        w.u32(c.skewSeconds)
        w.u32(c.keepaliveSeconds)
        w.u32((c.dropPrivileges ? WorkerConfig.flagDropPrivileges : 0) | (c.peer != nil ? WorkerConfig.flagPeer : 0))
        w.u32(c.uid)
        w.u32(c.gid)
        // Peer: kind (0 none, 4, 6), port, 16 address bytes, scope, 4 zero bytes.
        let peerStart = w.offset
        if let peer = c.peer?.unmapped, let family = peer.family {
            w.u16(family == .ipv4 ? 4 : 6)
            w.u16(peer.port)
            withUnsafeBytes(of: peer.storage) { raw in
                if family == .ipv4 {
                    w.bytes(UnsafeRawBufferPointer(rebasing: raw[4..<8]))
                    w.zeros(12)
                } else {
                    w.bytes(UnsafeRawBufferPointer(rebasing: raw[8..<24]))
                }
            }
            w.u32(peer.scopeID)
        } else if c.peer != nil {
            throw .badField(type: .config, field: "peer address has no family")
        }
        w.zeros(peerStart + WorkerConfig.peerBytes - w.offset)
        try fixedString(c.chrootPath, WorkerConfig.chrootBytes, field: "chroot path", into: &w)
        try fixedString(c.interface, WorkerConfig.interfaceBytes, field: "interface name", into: &w)
        guard c.formerSessions.count <= WorkerConfig.maxFormerSessions else {
            throw .badField(type: .config, field: "more than \(WorkerConfig.maxFormerSessions) former sessions")
        }
        w.u32(UInt32(c.formerSessions.count))
        for s in c.formerSessions { w.u64(s) }
        w.zeros(8 * (WorkerConfig.maxFormerSessions - c.formerSessions.count))
    }

    /// NUL-padded; at least one NUL, so at most size-1 bytes of text.
    private static func fixedString(_ text: String, _ size: Int, field: String, into w: inout Writer) throws(ChannelFault) {
        let utf8 = text.utf8
        guard utf8.count < size, !utf8.contains(0) else {
            throw .badField(type: .config, field: "\(field) is longer than \(size - 1) bytes or contains NUL")
        }
        for byte in utf8 { w.u8(byte) }
        w.zeros(size - utf8.count)
    }

    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\t") || (0x7f...0x9f).contains(scalar.value)
    }

    // MARK: Decode

    /// Decodes one received datagram. Total: any bytes and any fd count give
    /// a message or a `ChannelFault`, never a trap. On a fault the caller
    /// still owns (and must close) `fds`; on success `.fds` owns them.
    public static func decode(_ bytes: UnsafeRawBufferPointer, fdCount: Int, fds: UnsafeBufferPointer<Int32>) throws(ChannelFault) -> ChannelMessage {
        guard let first = bytes.first else { throw .empty }
        guard let type = ChannelMessageType(rawValue: first) else { throw .unknownType(first) }
        let body = UnsafeRawBufferPointer(rebasing: bytes[1...])
        guard type.bodyLength.contains(body.count) else { throw .wrongLength(type: type, got: body.count) }
        guard fdCount == type.fdCount, fds.count >= fdCount else { throw .wrongFDCount(type: type, got: fdCount) }
        var r = Reader(bytes: body)
        switch type {
        case .config:
            return .config(try decodeConfig(&r))
        case .key:
            return .key(SecretBytes(copying: body))
        case .fds:
            guard r.u8() == UInt8(type.fdCount) else { throw .badField(type: .fds, field: "count byte is not 3") }
            return .fds(tun: FileDescriptor(rawValue: fds[0]), udp: FileDescriptor(rawValue: fds[1]),
                        control: FileDescriptor(rawValue: fds[2]))
        case .ready:
            return .ready
        case .log:
            let levelByte = r.u8()
            guard let level = LogLevel(rawValue: levelByte) else {
                throw .badField(type: .log, field: "unknown level \(levelByte)")
            }
            let textBytes = UnsafeRawBufferPointer(rebasing: body[1...])
            guard let text = String(validating: textBytes, as: UTF8.self) else {
                throw .badField(type: .log, field: "text is not UTF-8")
            }
            if text.unicodeScalars.contains(where: isControl) {
                throw .badField(type: .log, field: "text contains control characters")
            }
            return .log(level: level, text: text)
        }
    }

    private static func decodeConfig(_ r: inout Reader) throws(ChannelFault) -> WorkerConfig {
        let session = r.u64(), start = r.u64(), skew = r.u32(), keepalive = r.u32()
        let flags = r.u32(), uid = r.u32(), gid = r.u32()
        guard flags & ~WorkerConfig.knownFlags == 0 else {
            throw .badField(type: .config, field: "unknown flag bits \(flags & ~WorkerConfig.knownFlags)")
        }
        let kind = r.u16(), port = r.u16()
        let address = r.slice(16)
        let scope = r.u32()
        let reserved = r.u32()
        var peer: SocketAddress?
        switch kind {
        case 0:
            guard port == 0, address.allSatisfy({ $0 == 0 }), scope == 0 else {
                throw .badField(type: .config, field: "peer bytes set without a peer")
            }
        case 4:
            guard address[4...].allSatisfy({ $0 == 0 }), scope == 0 else {
                throw .badField(type: .config, field: "IPv4 peer with stray bytes")
            }
            var v4 = in_addr()
            withUnsafeMutableBytes(of: &v4) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: address[0..<4])) }
            peer = SocketAddress(ipv4: v4, port: port)
        case 6:
            var v6 = in6_addr()
            withUnsafeMutableBytes(of: &v6) { $0.copyMemory(from: address) }
            peer = SocketAddress(ipv6: v6, port: port, scopeID: scope)
        default:
            throw .badField(type: .config, field: "unknown peer address kind \(kind)")
        }
        guard reserved == 0 else { throw .badField(type: .config, field: "reserved peer bytes set") }
        guard (peer != nil) == (flags & WorkerConfig.flagPeer != 0) else {
            throw .badField(type: .config, field: "peer flag does not match the peer address")
        }
        let chroot = try fixedString(r.slice(WorkerConfig.chrootBytes), field: "chroot path")
        let interface = try fixedString(r.slice(WorkerConfig.interfaceBytes), field: "interface name")
        let drop = flags & WorkerConfig.flagDropPrivileges != 0
        if drop && !chroot.hasPrefix("/") {
            throw .badField(type: .config, field: "chroot path is not absolute")
        }
        guard Tun.isValidName(interface) else {
            throw .badField(type: .config, field: "invalid interface name")
        }
        let formerCount = Int(r.u32())
        guard formerCount <= WorkerConfig.maxFormerSessions else {
            throw .badField(type: .config, field: "former session count \(formerCount)")
        }
        var former: [UInt64] = []
        for i in 0..<WorkerConfig.maxFormerSessions {
            let s = r.u64()
            if i < formerCount { former.append(s) } else if s != 0 {
                throw .badField(type: .config, field: "unused former session slot not zero")
            }
        }
        return WorkerConfig(session: session, startTimeMs: start, skewSeconds: skew, keepaliveSeconds: keepalive,
                            dropPrivileges: drop, uid: uid, gid: gid, peer: peer, chrootPath: chroot, interface: interface,
                            formerSessions: former)
    }

    /// Text up to the first NUL; everything after it must be NUL too, so
    /// there is exactly one encoding of each value.
    private static func fixedString(_ bytes: UnsafeRawBufferPointer, field: String) throws(ChannelFault) -> String {
        guard let end = bytes.firstIndex(of: 0) else {
            throw .badField(type: .config, field: "\(field) is not NUL-terminated")
        }
        guard bytes[end...].allSatisfy({ $0 == 0 }) else {
            throw .badField(type: .config, field: "\(field) has bytes after its NUL")
        }
        guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[..<end]), as: UTF8.self) else {
            throw .badField(type: .config, field: "\(field) is not UTF-8")
        }
        return text
    }
}

// MARK: Little-endian cursor helpers (callers check lengths first)

private struct Writer {
    let buffer: UnsafeMutableRawBufferPointer
    var offset = 0

    mutating func u8(_ v: UInt8) { buffer[offset] = v; offset += 1 }
    mutating func u16(_ v: UInt16) { for i in 0..<2 { u8(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { u8(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { u8(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func zeros(_ n: Int) { for _ in 0..<max(0, n) { u8(0) } }
    mutating func bytes(_ b: UnsafeRawBufferPointer) { for byte in b { u8(byte) } }
}

private struct Reader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func u8() -> UInt8 { defer { offset += 1 }; return bytes[offset] }
    mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    mutating func u32() -> UInt32 { var v: UInt32 = 0; for i in 0..<4 { v |= UInt32(u8()) << (8 * i) }; return v }
    mutating func u64() -> UInt64 { var v: UInt64 = 0; for i in 0..<8 { v |= UInt64(u8()) << (8 * i) }; return v }
    mutating func slice(_ n: Int) -> UnsafeRawBufferPointer {
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }
}
