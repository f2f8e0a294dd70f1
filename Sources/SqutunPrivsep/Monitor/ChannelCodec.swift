import SqutunSystem
import Shared
#if canImport(Glibc)
import Glibc
#endif

// The byte format of the monitor's messages (ChannelMessage.swift): pure
// functions over buffers, separate from the socket (Channel.swift), so
// they can be fuzzed.
//
// Format: 1 type byte, then a body whose length is checked exactly per
// type: fixed for most; `log` is 1 level byte + 1...1024 bytes of UTF-8;
// `fds` is a count byte and one role byte per descriptor, and exactly that
// many descriptors must come with it. Integers are little-endian. `hello`
// and `config` begin with a 4-byte version: the worker says which monitor
// version it speaks, the helper answers with a configuration of that
// version, and a receiver refuses any other with a line naming both.

public enum ChannelCodec {
    /// The monitor version this build speaks (`hello`) and the layout of
    /// its `config` (fields of `WorkerConfig`; version 2 added the suite,
    /// 3 the server mode's fields). The server mode's messages are new
    /// types, which an older build refuses as unknown: helper and worker
    /// are one binary, and the config version already tells two builds apart.
    public static let monitorVersion: UInt32 = 1
    public static let configVersion: UInt32 = 3
    public static let clientNameBytes = 32
    public static let versionBytes = 4
    public static let keyBytes = 32
    public static let maxLogBytes = 1024
    /// The most descriptors one `fds` answer carries: one of each role.
    public static let maxFDs = PassedFDRole.allCases.count
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
        case let .hello(version):
            w.u32(version)
        case let .config(config):
            w.u32(configVersion)
            try encodeConfig(config, into: &w)
        case let .key(secret):
            guard secret.count == keyBytes else { throw .wrongLength(type: .key, got: secret.count) }
            secret.withUnsafeBytes { w.bytes($0) }
        case let .fds(list):
            try checkRoles(list.map(\.role))
            w.u8(UInt8(list.count))
            for passed in list { w.u8(passed.role.rawValue) }
        case .ready, .keyRequest, .fdsRequest:
            break
        case let .clientKey(keyId, name, secret):
            guard secret.count == keyBytes else { throw .wrongLength(type: .clientKey, got: 36 + secret.count) }
            // Valid identifiers are 1...32 bytes without NUL: NUL-padded, no terminator needed.
            guard ClientID.isValid(name) else { throw .badField(type: .clientKey, field: "invalid client identifier") }
            w.u32(keyId)
            for byte in name.utf8 { w.u8(byte) }
            w.zeros(clientNameBytes - name.utf8.count)
            secret.withUnsafeBytes { w.bytes($0) }
        case let .clientForget(keyId):
            w.u32(keyId)
        case let .clientTun(keyId, interface, _, _):
            w.u32(keyId)
            try fixedString(interface, WorkerConfig.interfaceBytes, field: "interface name", type: .clientTun, into: &w)
        case let .clientRefused(keyId, reason):
            w.u32(keyId)
            w.u8(reason.rawValue)
        case let .clientClosed(keyId, reason):
            w.u32(keyId)
            w.u8(reason.rawValue)
        case let .clientTunRequest(keyId, address):
            w.u32(keyId)
            try Self.address(address, type: .clientTunRequest, into: &w)
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
        w.u32((c.peer != nil ? WorkerConfig.flagPeer : 0) | (c.server ? WorkerConfig.flagServer : 0)
              | (c.tap ? WorkerConfig.flagTAP : 0))
        w.u32(c.uid)
        w.u32(c.gid)
        try address(c.peer, type: .config, into: &w)
        try fixedString(c.chrootPath, WorkerConfig.chrootBytes, field: "chroot path", into: &w)
        try fixedString(c.interface, WorkerConfig.interfaceBytes, field: "interface name", into: &w)
        guard c.formerSessions.count <= WorkerConfig.maxFormerSessions else {
            throw .badField(type: .config, field: "more than \(WorkerConfig.maxFormerSessions) former sessions")
        }
        w.u32(UInt32(c.formerSessions.count))
        for s in c.formerSessions { w.u64(s) }
        w.zeros(8 * (WorkerConfig.maxFormerSessions - c.formerSessions.count))
        w.u8(c.suite.rawValue)
        w.zeros(3)
        w.u32(c.keyId)
        w.u32(c.idleTimeoutSeconds)
        w.u32(c.maxClients)
    }

    /// A peer's or client's address in 28 bytes: kind (0 none, 4, 6), port,
    /// 16 address bytes, scope, 4 zero bytes.
    private static func address(_ a: SocketAddress?, type: ChannelMessageType, into w: inout Writer) throws(ChannelFault) {
        let peerStart = w.offset
        if let peer = a?.unmapped, let family = peer.family {
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
        } else if a != nil {
            throw .badField(type: type, field: "address has no family")
        }
        w.zeros(peerStart + WorkerConfig.peerBytes - w.offset)
    }

    /// NUL-padded; at least one NUL, so at most size-1 bytes of text.
    private static func fixedString(_ text: String, _ size: Int, field: String, type: ChannelMessageType = .config,
                                    into w: inout Writer) throws(ChannelFault) {
        let utf8 = text.utf8
        guard utf8.count < size, !utf8.contains(0) else {
            throw .badField(type: type, field: "\(field) is longer than \(size - 1) bytes or contains NUL")
        }
        for byte in utf8 { w.u8(byte) }
        w.zeros(size - utf8.count)
    }

    /// 1...maxFDs descriptors, each role at most once.
    private static func checkRoles(_ roles: [PassedFDRole]) throws(ChannelFault) {
        guard !roles.isEmpty, roles.count <= maxFDs else { throw .wrongFDCount(type: .fds, got: roles.count) }
        guard Set(roles).count == roles.count else { throw .badField(type: .fds, field: "a role listed twice") }
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
        // A config of another version is named as such, whatever its length.
        if type == .config, body.count >= versionBytes {
            var r = Reader(bytes: body)
            let version = r.u32()
            guard version == configVersion else {
                throw .unsupportedVersion(type: .config, got: version, supported: configVersion)
            }
        }
        guard type.bodyLength.contains(body.count) else { throw .wrongLength(type: type, got: body.count) }
        guard type.fdCount.contains(fdCount), fds.count >= fdCount else { throw .wrongFDCount(type: type, got: fdCount) }
        var r = Reader(bytes: body)
        switch type {
        case .hello:
            return .hello(version: r.u32())
        case .config:
            _ = r.u32()  // checked above
            return .config(try decodeConfig(&r))
        case .key:
            return .key(SecretBytes(copying: body))
        case .fds:
            let declared = Int(r.u8())
            guard body.count == 1 + declared else {
                throw .badField(type: .fds, field: "count byte \(declared) for \(body.count - 1) roles")
            }
            guard declared == fdCount else { throw .wrongFDCount(type: .fds, got: fdCount) }
            var list: [PassedFD] = []
            for i in 0..<declared {
                let byte = r.u8()
                guard let role = PassedFDRole(rawValue: byte) else {
                    throw .badField(type: .fds, field: "unknown role \(byte)")
                }
                list.append(PassedFD(role, FileDescriptor(rawValue: fds[i])))
            }
            try checkRoles(list.map(\.role))
            return .fds(list)
        case .ready:
            return .ready
        case .keyRequest:
            return .keyRequest
        case .fdsRequest:
            return .fdsRequest
        case .clientKey:
            let keyId = r.u32()
            let nameBytes = r.slice(clientNameBytes)
            let end = nameBytes.firstIndex(of: 0) ?? clientNameBytes
            guard nameBytes[end...].allSatisfy({ $0 == 0 }),
                  let name = String(validating: UnsafeRawBufferPointer(rebasing: nameBytes[..<end]), as: UTF8.self),
                  ClientID.isValid(name) else {
                throw .badField(type: .clientKey, field: "invalid client identifier")
            }
            return .clientKey(keyId: keyId, name: name, key: SecretBytes(copying: r.slice(keyBytes)))
        case .clientForget:
            return .clientForget(keyId: r.u32())
        case .clientTun:
            let keyId = r.u32()
            let interface = try fixedString(r.slice(WorkerConfig.interfaceBytes), field: "interface name", type: .clientTun)
            guard Tun.isValidName(interface) else { throw .badField(type: .clientTun, field: "invalid interface name") }
            return .clientTun(keyId: keyId, interface: interface, fd: FileDescriptor(rawValue: fds[0]),
                              socket: fdCount == 2 ? FileDescriptor(rawValue: fds[1]) : nil)
        case .clientRefused:
            let keyId = r.u32(), byte = r.u8()
            guard let reason = ClientRefusal(rawValue: byte) else {
                throw .badField(type: .clientRefused, field: "unknown reason \(byte)")
            }
            return .clientRefused(keyId: keyId, reason: reason)
        case .clientClosed:
            let keyId = r.u32(), byte = r.u8()
            guard let reason = ClientClosure(rawValue: byte) else {
                throw .badField(type: .clientClosed, field: "unknown reason \(byte)")
            }
            return .clientClosed(keyId: keyId, reason: reason)
        case .clientTunRequest:
            let keyId = r.u32()
            guard let address = try decodeAddress(&r, type: .clientTunRequest, what: "client") else {
                throw .badField(type: .clientTunRequest, field: "no address")
            }
            return .clientTunRequest(keyId: keyId, address: address)
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
        let peer = try decodeAddress(&r, type: .config, what: "peer")
        guard (peer != nil) == (flags & WorkerConfig.flagPeer != 0) else {
            throw .badField(type: .config, field: "peer flag does not match the peer address")
        }
        let chroot = try fixedString(r.slice(WorkerConfig.chrootBytes), field: "chroot path")
        let interface = try fixedString(r.slice(WorkerConfig.interfaceBytes), field: "interface name")
        if !chroot.hasPrefix("/") {
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
        let suiteByte = r.u8()
        guard let suite = SuiteID(rawValue: suiteByte) else {
            throw .badField(type: .config, field: "unknown cipher suite \(suiteByte)")
        }
        guard r.slice(3).allSatisfy({ $0 == 0 }) else {
            throw .badField(type: .config, field: "reserved suite bytes set")
        }
        var config = WorkerConfig(session: session, startTimeMs: start, skewSeconds: skew, keepaliveSeconds: keepalive,
                                  uid: uid, gid: gid, peer: peer, chrootPath: chroot, interface: interface,
                                  formerSessions: former, suite: suite)
        config.server = flags & WorkerConfig.flagServer != 0
        config.tap = flags & WorkerConfig.flagTAP != 0
        if config.server && config.tap {
            throw .badField(type: .config, field: "a server in TAP mode")
        }
        config.keyId = r.u32()
        config.idleTimeoutSeconds = r.u32()
        config.maxClients = r.u32()
        if config.server && config.keyId != 0 {
            throw .badField(type: .config, field: "a server with a client key id")
        }
        if config.server && peer != nil { throw .badField(type: .config, field: "a server with a peer") }
        return config
    }

    /// The 28-byte address encoding (`address(_:type:into:)`); nil for kind 0.
    private static func decodeAddress(_ r: inout Reader, type: ChannelMessageType, what: String) throws(ChannelFault) -> SocketAddress? {
        let kind = r.u16(), port = r.u16()
        let address = r.slice(16)
        let scope = r.u32()
        let reserved = r.u32()
        var peer: SocketAddress?
        switch kind {
        case 0:
            guard port == 0, address.allSatisfy({ $0 == 0 }), scope == 0 else {
                throw .badField(type: type, field: "\(what) bytes set without a \(what)")
            }
        case 4:
            guard address[4...].allSatisfy({ $0 == 0 }), scope == 0 else {
                throw .badField(type: type, field: "IPv4 \(what) with stray bytes")
            }
            var v4 = in_addr()
            withUnsafeMutableBytes(of: &v4) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: address[0..<4])) }
            peer = SocketAddress(ipv4: v4, port: port)
        case 6:
            var v6 = in6_addr()
            withUnsafeMutableBytes(of: &v6) { $0.copyMemory(from: address) }
            peer = SocketAddress(ipv6: v6, port: port, scopeID: scope)
        default:
            throw .badField(type: type, field: "unknown \(what) address kind \(kind)")
        }
        guard reserved == 0 else { throw .badField(type: type, field: "reserved \(what) bytes set") }
        return peer
    }

    /// Text up to the first NUL; everything after it must be NUL too, so
    /// there is exactly one encoding of each value.
    private static func fixedString(_ bytes: UnsafeRawBufferPointer, field: String,
                                    type: ChannelMessageType = .config) throws(ChannelFault) -> String {
        guard let end = bytes.firstIndex(of: 0) else {
            throw .badField(type: type, field: "\(field) is not NUL-terminated")
        }
        guard bytes[end...].allSatisfy({ $0 == 0 }) else {
            throw .badField(type: type, field: "\(field) has bytes after its NUL")
        }
        guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[..<end]), as: UTF8.self) else {
            throw .badField(type: type, field: "\(field) is not UTF-8")
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
