import XCTest
import CShim
import Shared
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

final class ChannelTests: XCTestCase {
    private var toClose: [FileDescriptor] = []

    override func tearDown() {
        toClose.forEach { $0.close() }
        toClose = []
        super.tearDown()
    }

    /// Both ends; each closes itself when the test lets go of it.
    private func pair() throws -> Channel.Pair { try Channel.makePair() }

    private func fds(_ list: [FileDescriptor]) -> ChannelMessage {
        .fds(zip([PassedFDRole.tun, .udp, .control], list).map { PassedFD($0, $1) })
    }

    private func pipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
        let p = try FileDescriptor.makePipe()
        toClose += [p.read, p.write]
        return p
    }

    static let sampleConfig = WorkerConfig(
        session: 0x0123_4567_89ab_cdef, startTimeMs: 1_700_000_000_123, skewSeconds: 30, keepaliveSeconds: 25,
        uid: 998, gid: 997, peer: SocketAddress.parse(literal: "198.51.100.2", port: 3456),
        chrootPath: "/var/lib/squtun/empty", interface: "tun0")

    private func key() -> SecretBytes {
        let bytes = (0..<32).map { UInt8($0 * 7 & 0xff) }
        return bytes.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    private func encode(_ m: ChannelMessage) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: ChannelCodec.maxMessageBytes)
        let n = try buffer.withUnsafeMutableBytes { try ChannelCodec.encode(m, into: $0) }
        return Array(buffer[0..<n])
    }

    private func decode(_ bytes: [UInt8], fds: [Int32] = []) throws -> ChannelMessage {
        try bytes.withUnsafeBytes { b in
            try fds.withUnsafeBufferPointer { try ChannelCodec.decode(b, fdCount: fds.count, fds: $0) }
        }
    }

    private func assertFault(_ bytes: [UInt8], fds: [Int32] = [], _ expected: ChannelFault,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decode(bytes, fds: fds), file: file, line: line) { error in
            XCTAssertEqual(error as? ChannelFault, expected, file: file, line: line)
        }
    }

    // MARK: Round trips over a real socketpair

    func testConfigRoundTrips() throws {
        let p = try pair()
        let helper = p.helper, worker = p.worker
        var v6 = ChannelTests.sampleConfig
        v6.peer = SocketAddress.parse(literal: "fe80::1%2", port: 9)
        var none = ChannelTests.sampleConfig
        none.peer = nil
        var former = ChannelTests.sampleConfig
        former.formerSessions = (1...32).map { 0x0123_4567_0000_0000 + UInt64($0) }
        for config in [ChannelTests.sampleConfig, v6, none, former] {
            try helper.send(.config(config))
            XCTAssertEqual(try worker.receive(from: .helper), .config(config))
        }
    }

    func testEveryRequestAndAnswerRoundTrips() throws {
        let p = try pair()
        let helper = p.helper, worker = p.worker
        for request: ChannelMessage in [.hello(version: 1), .hello(version: 0xfeed_beef), .keyRequest, .fdsRequest] {
            try worker.send(request)
            XCTAssertEqual(try helper.receive(from: .worker), request)
        }
        try helper.send(.key(key()))
        XCTAssertEqual(try worker.receive(from: .helper), .key(key()))
        try worker.send(.ready)
        XCTAssertEqual(try helper.receive(from: .worker), .ready)
        for level in LogLevel.allCases {
            try worker.send(.log(level: level, text: "peer moved to [2001:db8::1]:3456 — ünïcode ✓"))
            XCTAssertEqual(try helper.receive(from: .worker), .log(level: level, text: "peer moved to [2001:db8::1]:3456 — ünïcode ✓"))
        }
        try worker.sendLog(level: LOG_NOTICE, text: "notice")
        XCTAssertEqual(try helper.receive(from: .worker), .log(level: .info, text: "notice"))
        try worker.sendLog(level: LOG_CRIT, text: "")
        XCTAssertEqual(try helper.receive(from: .worker), .log(level: .error, text: "(empty log message)"))
    }

    func testFileDescriptorsRoundTrip() throws {
        let p = try pair()
        let helper = p.helper, worker = p.worker
        let pipes = try (0..<3).map { _ in try pipe() }
        try helper.send(fds(pipes.map(\.write)))
        guard case let .fds(list) = try worker.receive(from: .helper) else {
            return XCTFail("expected fds")
        }
        XCTAssertEqual(list.map(\.role), [.tun, .udp, .control])
        let received = list.map(\.fd)
        toClose += received
        for (i, fd) in received.enumerated() {
            XCTAssertNotEqual(fd, pipes[i].write, "a new descriptor, not the sender's number")
            XCTAssertTrue(fd.isCloseOnExec, "MSG_CMSG_CLOEXEC")
            // Usable: write through the received copy, read from the original pipe.
            let message = Array("via \(i)".utf8)
            XCTAssertEqual(try message.withUnsafeBytes { try fd.write($0) }, message.count)
            var buffer = [UInt8](repeating: 0, count: 16)
            let n = try buffer.withUnsafeMutableBytes { try pipes[i].read.read(into: $0) }
            XCTAssertEqual(n.map { Array(buffer[0..<$0]) }, message)
        }
    }

    /// A variable list: tun and UDP without a control socket, or one descriptor.
    func testDescriptorListsOfEveryLength() throws {
        let p = try pair()
        let helper = p.helper, worker = p.worker
        for count in 1...ChannelCodec.maxFDs {
            let pipes = try (0..<count).map { _ in try pipe() }
            try helper.send(fds(pipes.map(\.write)))
            guard case let .fds(list) = try worker.receive(from: .helper) else { return XCTFail("expected fds") }
            toClose += list.map(\.fd)
            XCTAssertEqual(list.map(\.role), Array([PassedFDRole.tun, .udp, .control].prefix(count)))
        }
    }

    func testClosedPeerIsReported() throws {
        let p = try pair()
        let helper = p.helper
        p.worker.close()
        XCTAssertThrowsError(try helper.receive(from: .worker)) { error in
            XCTAssertEqual(error as? PrivsepError, .channelClosed)
        }
        XCTAssertThrowsError(try helper.send(.ready)) { error in
            XCTAssertEqual(error as? PrivsepError, .channelIO(operation: "sendmsg", errno: Errno(EPIPE)), "EPIPE, not SIGPIPE")
        }
    }

    func testWrongSenderIsRefused() throws {
        let p = try pair()
        let helper = p.helper, worker = p.worker
        for request: ChannelMessage in [.ready, .hello(version: 1), .keyRequest, .fdsRequest, .log(level: .info, text: "x")] {
            try helper.send(request)  // a worker-only type coming from the helper
            XCTAssertThrowsError(try worker.receive(from: .helper)) { error in
                XCTAssertEqual(error as? PrivsepError, .channelMessage(.wrongSender(type: request.type)))
            }
        }
        for answer: ChannelMessage in [.config(ChannelTests.sampleConfig), .key(key())] {
            try worker.send(answer)
            XCTAssertThrowsError(try helper.receive(from: .worker)) { error in
                XCTAssertEqual(error as? PrivsepError, .channelMessage(.wrongSender(type: answer.type)))
            }
        }
    }

    // MARK: Descriptor count faults close what arrived

    /// Sends `body` with `count` pipe write ends (our copies closed), then
    /// checks the receiver refuses it with `expected` and closed every
    /// descriptor it got: each pipe's read end must see end-of-file.
    private func assertRefusedAndClosed(_ body: [UInt8], fdCount count: Int, from sender: ChannelSender,
                                        _ expected: ChannelFault, line: UInt = #line) throws {
        let p = try pair()
        let helper = p.helper, worker = p.worker
        let pipes = try (0..<count).map { _ in try FileDescriptor.makePipe() }
        let raw = pipes.map(\.write.rawValue)
        let sent = body.withUnsafeBytes { b in
            raw.withUnsafeBufferPointer { squtun_send_fds(helper.fd.rawValue, b.baseAddress, b.count, $0.baseAddress, Int32(count), 0) }
        }
        XCTAssertEqual(sent, body.count, "send errno \(errno)", line: line)
        pipes.forEach { $0.write.close() }
        XCTAssertThrowsError(try worker.receive(from: sender), line: line) { error in
            XCTAssertEqual(error as? PrivsepError, .channelMessage(expected), line: line)
        }
        for p in pipes {
            var byte: UInt8 = 0
            XCTAssertEqual(Glibc.read(p.read.rawValue, &byte, 1), 0, "a received fd was left open", line: line)
            p.read.close()
        }
    }

    func testWrongDescriptorCounts() throws {
        // Three declared (tun, udp, control): exactly three must come.
        let fdsBody: [UInt8] = [ChannelMessageType.fds.rawValue, 3, 1, 2, 3]
        try assertRefusedAndClosed(fdsBody, fdCount: 2, from: .helper, .wrongFDCount(type: .fds, got: 2))
        try assertRefusedAndClosed(fdsBody, fdCount: 4, from: .helper, .wrongFDCount(type: .fds, got: 4))
        try assertRefusedAndClosed(fdsBody, fdCount: 0, from: .helper, .wrongFDCount(type: .fds, got: 0))
        // Two declared, three came (and the other way round).
        try assertRefusedAndClosed([ChannelMessageType.fds.rawValue, 2, 1, 2], fdCount: 3, from: .helper,
                                   .wrongFDCount(type: .fds, got: 3))
        try assertRefusedAndClosed([ChannelMessageType.fds.rawValue, 1, 1], fdCount: 2, from: .helper,
                                   .wrongFDCount(type: .fds, got: 2))
        // Requests take none.
        for request: ChannelMessageType in [.keyRequest, .fdsRequest] {
            try assertRefusedAndClosed([request.rawValue], fdCount: 1, from: .worker, .wrongFDCount(type: request, got: 1))
        }
        try assertRefusedAndClosed([ChannelMessageType.hello.rawValue, 1, 0, 0, 0], fdCount: 3, from: .worker,
                                   .wrongFDCount(type: .hello, got: 3))
        // Descriptors riding on a message that takes none.
        try assertRefusedAndClosed([ChannelMessageType.ready.rawValue], fdCount: 1, from: .worker, .wrongFDCount(type: .ready, got: 1))
        // Unknown type with descriptors: still closed.
        try assertRefusedAndClosed([0x7f], fdCount: 2, from: .helper, .unknownType(0x7f))
    }

    func testTooManyDescriptorsAreTruncatedAndClosed() throws {
        let p = try pair()
        let helper = p.helper, worker = p.worker
        // 12 descriptors: more than the receiver's control buffer holds
        // (SQUTUN_MAX_FDS = 8), so MSG_CTRUNC; the kernel drops the surplus
        // and the receiver must close the 8 it got.
        let pipes = try (0..<12).map { _ in try FileDescriptor.makePipe() }
        let body: [UInt8] = [ChannelMessageType.fds.rawValue, 3, 1, 2, 3]
        XCTAssertEqual(rawSend(helper.fd, body, pipes.map(\.write.rawValue)), 5, "errno \(errno)")
        pipes.forEach { $0.write.close() }
        XCTAssertThrowsError(try worker.receive(from: .helper)) { error in
            XCTAssertEqual(error as? PrivsepError, .channelMessage(.truncated))
        }
        for p in pipes {
            var byte: UInt8 = 0
            XCTAssertEqual(Glibc.read(p.read.rawValue, &byte, 1), 0)
            p.read.close()
        }
    }

    /// sendmsg with one SCM_RIGHTS block of any size, built by hand (the
    /// CMSG_* macros are not visible to Swift): cmsghdr is
    /// { size_t len; int level; int type; } then the ints.
    private func rawSend(_ socket: FileDescriptor, _ body: [UInt8], _ fds: [Int32]) -> Int {
        let header = MemoryLayout<Int>.size + 8
        let length = header + 4 * fds.count
        var control = [UInt8](repeating: 0, count: (length + 7) & ~7)
        control.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: length, toByteOffset: 0, as: Int.self)
            raw.storeBytes(of: SOL_SOCKET, toByteOffset: MemoryLayout<Int>.size, as: Int32.self)
            raw.storeBytes(of: Int32(SCM_RIGHTS), toByteOffset: MemoryLayout<Int>.size + 4, as: Int32.self)
            for (i, fd) in fds.enumerated() { raw.storeBytes(of: fd, toByteOffset: header + 4 * i, as: Int32.self) }
        }
        var body = body
        return body.withUnsafeMutableBytes { b in
            control.withUnsafeMutableBytes { c in
                var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
                return withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var message = msghdr()
                    message.msg_iov = iovPointer
                    message.msg_iovlen = 1
                    message.msg_control = c.baseAddress
                    message.msg_controllen = c.count
                    return sendmsg(socket.rawValue, &message, 0)
                }
            }
        }
    }

    func testOversizedMessageIsTruncated() throws {
        let p = try pair()
        let helper = p.helper, worker = p.worker
        var big = [UInt8](repeating: 0x41, count: 4000)
        big[0] = ChannelMessageType.log.rawValue
        big[1] = 2
        XCTAssertEqual(big.withUnsafeBytes { squtun_send_fds(helper.fd.rawValue, $0.baseAddress, $0.count, nil, 0, 0) }, 4000)
        XCTAssertThrowsError(try worker.receive(from: .worker)) { error in
            XCTAssertEqual(error as? PrivsepError, .channelMessage(.truncated))
        }
    }

    // MARK: Pure codec

    func testEncodedSizes() throws {
        XCTAssertEqual(try encode(.config(ChannelTests.sampleConfig)).count, 1 + 4 + 336 + 4 + 8 * 32 + 4 + 12)
        XCTAssertEqual(try encode(.key(key())).count, 33)
        let five = FileDescriptor(rawValue: 5), six = FileDescriptor(rawValue: 6), seven = FileDescriptor(rawValue: 7)
        XCTAssertEqual(try encode(fds([five, six, seven])), [3, 3, 1, 2, 3])
        XCTAssertEqual(try encode(.fds([PassedFD(.udp, five), PassedFD(.tun, six)])), [3, 2, 2, 1])
        XCTAssertEqual(try encode(.fds([PassedFD(.control, five)])), [3, 1, 3])
        XCTAssertEqual(try encode(.ready), [4])
        XCTAssertEqual(try encode(.hello(version: 1)), [6, 1, 0, 0, 0])
        XCTAssertEqual(try encode(.keyRequest), [7])
        XCTAssertEqual(try encode(.fdsRequest), [8])
        XCTAssertEqual(try encode(.log(level: .warning, text: "hi")), [5, 1, 0x68, 0x69])
        XCTAssertEqual(ChannelCodec.maxMessageBytes, 1026)
    }

    func testConfigByteLayout() throws {
        let bytes = try encode(.config(ChannelTests.sampleConfig))
        XCTAssertEqual(bytes[0], 1)
        XCTAssertEqual(Array(bytes[1..<5]), [3, 0, 0, 0], "configuration version 3, first")
        XCTAssertEqual(Array(bytes[5..<13]), [0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01], "session, little-endian")
        XCTAssertEqual(Array(bytes[29..<33]), [2, 0, 0, 0], "flags: peer (bit 0, once \"drop privileges\", unused)")
        XCTAssertEqual(Array(bytes[41..<45]), [4, 0, 0x80, 0x0d], "peer kind 4, port 3456")
        XCTAssertEqual(Array(bytes[45..<49]), [198, 51, 100, 2])
        XCTAssertEqual(Array(bytes[69..<90]), Array("/var/lib/squtun/empty".utf8))
        XCTAssertEqual(bytes[90], 0)
        XCTAssertEqual(Array(bytes[325..<329]), Array("tun0".utf8))
        XCTAssertEqual(Array(bytes[601..<605]), [1, 0, 0, 0], "suite 1 (the default), 3 zero bytes")
        XCTAssertEqual(Array(bytes[605..<617]), [UInt8](repeating: 0, count: 12), "key id, idle timeout, max clients: 0")
        XCTAssertEqual(bytes.count, 617)
        var gcm = ChannelTests.sampleConfig
        gcm.suite = .aes256GCM
        let encoded = try encode(.config(gcm))
        XCTAssertEqual(Array(encoded[601..<605]), [2, 0, 0, 0])
        XCTAssertEqual(try decode(encoded), .config(gcm))
        // A client's key id; a server's flag, idle timeout and client limit.
        var client = ChannelTests.sampleConfig
        client.keyId = 0x0102_0304
        XCTAssertEqual(Array(try encode(.config(client))[605..<609]), [4, 3, 2, 1])
        XCTAssertEqual(try decode(try encode(.config(client))), .config(client))
        var server = ChannelTests.sampleConfig
        server.peer = nil
        server.server = true
        server.idleTimeoutSeconds = 300
        server.maxClients = 1024
        let serverBytes = try encode(.config(server))
        XCTAssertEqual(Array(serverBytes[29..<33]), [4, 0, 0, 0], "flags: server (bit 2)")
        XCTAssertEqual(Array(serverBytes[609..<617]), [0x2c, 1, 0, 0, 0, 4, 0, 0])
        XCTAssertEqual(try decode(serverBytes), .config(server))
        // A server never has a client's key id.
        var both = server
        both.keyId = 7
        assertFault(try encode(.config(both)), .badField(type: .config, field: "a server with a client key id"))
        // TAP mode (--tap): flag bit 3, beside the peer's; never a server.
        var tap = ChannelTests.sampleConfig
        tap.tap = true
        let tapBytes = try encode(.config(tap))
        XCTAssertEqual(Array(tapBytes[29..<33]), [0x0a, 0, 0, 0], "flags: peer (bit 1), TAP (bit 3)")
        XCTAssertEqual(Array(tapBytes[601..<605]), [1, 0, 0, 0], "the reserved bytes stay zero")
        XCTAssertEqual(try decode(tapBytes), .config(tap))
        XCTAssertEqual(Array(try encode(.config(ChannelTests.sampleConfig))[29..<33]), [2, 0, 0, 0], "TUN mode: bit 3 clear")
        var tapServer = server
        tapServer.tap = true
        assertFault(try encode(.config(tapServer)), .badField(type: .config, field: "a server in TAP mode"))
    }

    /// The server mode's messages: exact layouts, round trips, and each
    /// field a hostile peer could get wrong refused.
    func testServerMessages() throws {
        let secret = key()
        let addKey = try encode(.clientKey(keyId: 0x0a0b_0c0d, name: "alice", key: secret))
        XCTAssertEqual(addKey.count, 1 + 68)
        XCTAssertEqual(Array(addKey[0..<10]), [9, 0x0d, 0x0c, 0x0b, 0x0a] + Array("alice".utf8))
        XCTAssertEqual(Array(addKey[10..<37]), [UInt8](repeating: 0, count: 27), "identifier NUL-padded to 32")
        XCTAssertEqual(try decode(addKey), .clientKey(keyId: 0x0a0b_0c0d, name: "alice", key: secret))
        let longest = String(repeating: "x", count: 32)
        XCTAssertEqual(try decode(try encode(.clientKey(keyId: 1, name: longest, key: secret))),
                       .clientKey(keyId: 1, name: longest, key: secret))
        XCTAssertThrowsError(try encode(.clientKey(keyId: 1, name: "../etc", key: secret)))
        var badName = addKey
        badName[5] = UInt8(ascii: "/")
        assertFault(badName, .badField(type: .clientKey, field: "invalid client identifier"))
        var stray = addKey
        stray[20] = 1  // a byte after the name's NUL padding began
        assertFault(stray, .badField(type: .clientKey, field: "invalid client identifier"))
        assertFault(Array(addKey.dropLast()), .wrongLength(type: .clientKey, got: 67))

        XCTAssertEqual(try encode(.clientForget(keyId: 5)), [10, 5, 0, 0, 0])
        XCTAssertEqual(try decode([10, 5, 0, 0, 0]), .clientForget(keyId: 5))
        XCTAssertEqual(try encode(.clientRefused(keyId: 5, reason: .tooMany)), [12, 5, 0, 0, 0, 3])
        XCTAssertEqual(try decode([12, 5, 0, 0, 0, 6]), .clientRefused(keyId: 5, reason: .hookFailed))
        assertFault([12, 5, 0, 0, 0, 0], .badField(type: .clientRefused, field: "unknown reason 0"))
        XCTAssertEqual(try decode([14, 5, 0, 0, 0, 1]), .clientClosed(keyId: 5, reason: .idle))
        assertFault([14, 5, 0, 0, 0, 9], .badField(type: .clientClosed, field: "unknown reason 9"))

        // The tun comes with two descriptors (the tun, the client's own
        // socket) or one (the tun alone), under a valid name.
        let sent = ChannelMessage.clientTun(keyId: 5, interface: "sqc0", fd: FileDescriptor(rawValue: 9),
                                            socket: FileDescriptor(rawValue: 10))
        XCTAssertEqual(sent.fileDescriptors, [FileDescriptor(rawValue: 9), FileDescriptor(rawValue: 10)])
        let tun = try encode(sent)
        XCTAssertEqual(tun.count, 21)
        XCTAssertEqual(try decode(tun, fds: [9, 10]), sent)
        let alone = ChannelMessage.clientTun(keyId: 5, interface: "sqc0", fd: FileDescriptor(rawValue: 9), socket: nil)
        XCTAssertEqual(alone.fileDescriptors, [FileDescriptor(rawValue: 9)])
        XCTAssertEqual(try encode(alone), tun)
        XCTAssertEqual(try decode(tun, fds: [9]), alone)
        assertFault(tun, .wrongFDCount(type: .clientTun, got: 0))
        assertFault(tun, fds: [9, 10, 11], .wrongFDCount(type: .clientTun, got: 3))
        var badTun = tun
        badTun[6] = UInt8(ascii: "/")
        assertFault(badTun, fds: [9, 10], .badField(type: .clientTun, field: "invalid interface name"))

        // The request carries the client's address (the config's peer encoding).
        let address = SocketAddress.parse(literal: "198.51.100.7", port: 3456)!
        let request = try encode(.clientTunRequest(keyId: 5, address: address))
        XCTAssertEqual(request.count, 33)
        XCTAssertEqual(Array(request[5..<13]), [4, 0, 0x80, 0x0d, 198, 51, 100, 7])
        XCTAssertEqual(try decode(request), .clientTunRequest(keyId: 5, address: address))
        var noAddress = request
        for i in 5..<33 { noAddress[i] = 0 }
        assertFault(noAddress, .badField(type: .clientTunRequest, field: "no address"))

        // Each side's messages only from that side.
        XCTAssertEqual(ChannelMessageType.clientTunRequest.sender, .worker)
        XCTAssertEqual(ChannelMessageType.clientClosed.sender, .worker)
        for type: ChannelMessageType in [.clientKey, .clientForget, .clientTun, .clientRefused] {
            XCTAssertEqual(type.sender, .helper)
        }
    }

    func testConfigSuiteByteIsChecked() throws {
        var bytes = try encode(.config(ChannelTests.sampleConfig))
        bytes[601] = 4
        assertFault(bytes, .badField(type: .config, field: "unknown cipher suite 4"))
        bytes[601] = 0
        assertFault(bytes, .badField(type: .config, field: "unknown cipher suite 0"))
        bytes[601] = 3
        bytes[604] = 1
        assertFault(bytes, .badField(type: .config, field: "reserved suite bytes set"))
    }

    /// A configuration of another version is named as such, whatever its
    /// length; a short one of this version is a length fault.
    func testConfigVersionMismatch() throws {
        var other = try encode(.config(ChannelTests.sampleConfig))
        other[1] = 1
        assertFault(other, .unsupportedVersion(type: .config, got: 1, supported: 3))
        assertFault([1, 0, 0, 0, 1], .unsupportedVersion(type: .config, got: 0x0100_0000, supported: 3))
        assertFault([1, 3, 0, 0, 0], .wrongLength(type: .config, got: 4))
        assertFault([1, 3, 0], .wrongLength(type: .config, got: 2))
        XCTAssertEqual(PrivsepError.channelMessage(.unsupportedVersion(type: .config, got: 1, supported: 3)).description,
                       "helper/worker channel: the other squtun process sent a version 1 config message; this one reads version 3 (are helper and worker different squtun builds?); stopping")
        // Over the socket, as the worker receives it.
        let p = try pair()
        XCTAssertEqual(other.withUnsafeBytes { squtun_send_fds(p.helper.fd.rawValue, $0.baseAddress, $0.count, nil, 0, 0) }, other.count)
        XCTAssertThrowsError(try p.worker.receive(from: .helper)) { error in
            XCTAssertEqual(error as? PrivsepError, .channelMessage(.unsupportedVersion(type: .config, got: 1, supported: 3)))
        }
    }

    func testLogTextIsCutAndCleaned() throws {
        let long = String(repeating: "é", count: 2000)  // 2 bytes each
        guard case let .log(_, text) = try decode(try encode(.log(level: .info, text: long))) else { return XCTFail() }
        XCTAssertEqual(text.utf8.count, 1024)
        XCTAssertEqual(text, String(repeating: "é", count: 512))
        let odd = String(repeating: "a", count: 1023) + "é"  // would end mid-character: dropped whole
        guard case let .log(_, cut) = try decode(try encode(.log(level: .info, text: odd))) else { return XCTFail() }
        XCTAssertEqual(cut, String(repeating: "a", count: 1023))
        XCTAssertEqual(try decode(try encode(.log(level: .info, text: "a\nb\u{1b}[31mc\u{9b}d\te"))),
                       .log(level: .info, text: "a b [31mc d\te"))
        XCTAssertThrowsError(try encode(.log(level: .info, text: ""))) { error in
            XCTAssertEqual(error as? ChannelFault, .badField(type: .log, field: "empty text"))
        }
    }

    func testEncodeRefusesTooManyFormerSessions() {
        var c = ChannelTests.sampleConfig
        c.formerSessions = Array(repeating: 1, count: 33)
        XCTAssertThrowsError(try encode(.config(c)))
    }

    func testEncodeRefusesBadConfigs() {
        var config = ChannelTests.sampleConfig
        config.chrootPath = String(repeating: "x", count: 256)
        XCTAssertThrowsError(try encode(.config(config)))
        config = ChannelTests.sampleConfig
        config.interface = "a-much-too-long-name"
        XCTAssertThrowsError(try encode(.config(config)))
        XCTAssertThrowsError(try encode(.fds([]))) { error in
            XCTAssertEqual(error as? ChannelFault, .wrongFDCount(type: .fds, got: 0))
        }
        let five = FileDescriptor(rawValue: 5)
        XCTAssertThrowsError(try encode(.fds([PassedFD(.tun, five), PassedFD(.tun, five)]))) { error in
            XCTAssertEqual(error as? ChannelFault, .badField(type: .fds, field: "a role listed twice"))
        }
        XCTAssertThrowsError(try encode(.fds(Array(repeating: PassedFD(.tun, five), count: 4)))) { error in
            XCTAssertEqual(error as? ChannelFault, .wrongFDCount(type: .fds, got: 4))
        }
        let shortKey = [UInt8](repeating: 1, count: 16).withUnsafeBytes { SecretBytes(copying: $0) }
        XCTAssertThrowsError(try encode(.key(shortKey))) { error in
            XCTAssertEqual(error as? ChannelFault, .wrongLength(type: .key, got: 16))
        }
    }

    func testDecodeFaults() throws {
        let config = try encode(.config(ChannelTests.sampleConfig))
        assertFault([], .empty)
        for type: UInt8 in [0, 15, 0x7f, 0xff] { assertFault([type], .unknownType(type)) }
        assertFault(Array(config.dropLast()), .wrongLength(type: .config, got: 615))
        assertFault(config + [0], .wrongLength(type: .config, got: 617))
        assertFault([2] + [UInt8](repeating: 1, count: 31), .wrongLength(type: .key, got: 31))
        assertFault([2] + [UInt8](repeating: 1, count: 33), .wrongLength(type: .key, got: 33))
        assertFault([3], .wrongLength(type: .fds, got: 0))
        assertFault([3, 1], fds: [5], .wrongLength(type: .fds, got: 1))
        assertFault([3, 4, 1, 2, 3, 3], fds: [5, 6, 7], .wrongLength(type: .fds, got: 5))
        assertFault([3, 3, 1, 2], fds: [5, 6, 7], .badField(type: .fds, field: "count byte 3 for 2 roles"))
        assertFault([3, 2, 1, 2], fds: [5, 6, 7], .wrongFDCount(type: .fds, got: 3))
        assertFault([3, 2, 1, 9], fds: [5, 6], .badField(type: .fds, field: "unknown role 9"))
        assertFault([3, 2, 0, 1], fds: [5, 6], .badField(type: .fds, field: "unknown role 0"))
        assertFault([3, 2, 2, 2], fds: [5, 6], .badField(type: .fds, field: "a role listed twice"))
        assertFault([4, 0], .wrongLength(type: .ready, got: 1))
        assertFault([6, 1, 0, 0], .wrongLength(type: .hello, got: 3))
        assertFault([6, 1, 0, 0, 0, 0], .wrongLength(type: .hello, got: 5))
        assertFault([7, 0], .wrongLength(type: .keyRequest, got: 1))
        assertFault([8, 0], .wrongLength(type: .fdsRequest, got: 1))
        assertFault([5, 2], .wrongLength(type: .log, got: 1))
        assertFault([5, 2] + [UInt8](repeating: 0x61, count: 1025), .wrongLength(type: .log, got: 1026))
        assertFault([5, 8, 0x61], .badField(type: .log, field: "unknown level 8"))
        assertFault([5, 2, 0xff, 0xfe], .badField(type: .log, field: "text is not UTF-8"))
        assertFault([5, 2, 0xc3], .badField(type: .log, field: "text is not UTF-8"))
        assertFault([5, 2, 0x61, 0x0a], .badField(type: .log, field: "text contains control characters"))
        assertFault([5, 2, 0x00], .badField(type: .log, field: "text contains control characters"))
    }

    func testConfigFieldFaults() throws {
        let good = try encode(.config(ChannelTests.sampleConfig))
        func patched(_ edits: [(Int, UInt8)]) -> [UInt8] {
            var b = good
            for (i, v) in edits { b[i] = v }
            return b
        }
        func field(_ text: String) -> ChannelFault { .badField(type: .config, field: text) }
        assertFault(patched([(29, 0x12)]), field("unknown flag bits 16"))
        assertFault(patched([(29, 0x06)]), field("a server with a peer"))
        // The former "drop privileges" bit: every worker drops them, a config that says so is refused.
        assertFault(patched([(29, 0x03)]), field("unknown flag bits 1"))
        assertFault(patched([(29, 0x00)]), field("peer flag does not match the peer address"))
        assertFault(patched([(41, 5)]), field("unknown peer address kind 5"))
        assertFault(patched([(54, 1)]), field("IPv4 peer with stray bytes"))
        assertFault(patched([(65, 1)]), field("reserved peer bytes set"))
        let chrootAllSet = (69..<325).map { ($0, UInt8(0x61)) }
        assertFault(patched(chrootAllSet), field("chroot path is not NUL-terminated"))
        assertFault(patched([(304, 0x61)]), field("chroot path has bytes after its NUL"))
        assertFault(patched([(69, 0xff)]), field("chroot path is not UTF-8"))
        assertFault(patched([(69, UInt8(ascii: "x"))]), field("chroot path is not absolute"))
        // What the single process's config once was (no drop, no chroot,
        // here without a peer) is refused: every worker chroots.
        let peerless = [(29, UInt8(0))] + (41..<69).map { ($0, UInt8(0)) }
        assertFault(patched(peerless + (69..<90).map { ($0, UInt8(0)) }), field("chroot path is not absolute"))
        XCTAssertNoThrow(try decode(patched(peerless)), "the same with its chroot is a config")
        assertFault(patched((325..<341).map { ($0, UInt8(0x61)) }), field("interface name is not NUL-terminated"))
        assertFault(patched([(326, UInt8(ascii: "/"))]), field("invalid interface name"))
        assertFault(patched((325..<329).map { ($0, UInt8(0)) }), field("invalid interface name"))
        // Former sessions: a count over 32, a nonzero unused slot.
        assertFault(patched([(341, 33)]), field("former session count 33"))
        assertFault(patched([(345, 1)]), field("unused former session slot not zero"))
        // No peer: every peer byte must be zero.
        var none = ChannelTests.sampleConfig
        none.peer = nil
        var bytes = try encode(.config(none))
        bytes[43] = 1
        assertFault(bytes, field("peer bytes set without a peer"))
    }

    /// 100,000 random byte strings (and random fd counts) through the
    /// decoder: each must give a message or a ChannelFault, never a trap.
    /// Half are mutations of valid messages, so the deep checks are reached.
    func testDecoderFuzz() throws {
        var rng = SplitMix64(seed: 0x5157_5455_4e21)
        let seeds = try [
            encode(.config(ChannelTests.sampleConfig)), encode(.key(key())), [3, 3, 1, 2, 3], [3, 2, 1, 2], [4],
            encode(.log(level: .info, text: "hello")), [6, 1, 0, 0, 0], [7], [8],
        ]
        let fakeFDs: [Int32] = [-1, -1, -1, -1, -1]
        var decoded = 0, faults = 0
        for i in 0..<100_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                let length = Int(rng.next() % 1100)
                bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if length > 0 && i % 4 == 0 { bytes[0] = UInt8(1 + rng.next() % 8) }  // a known type
            } else {
                bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
                for _ in 0..<(1 + rng.next() % 4) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 8 == 0 { bytes.removeLast(Int(rng.next() % UInt64(bytes.count))) }
            }
            let fdCount = rng.next() % 4 == 0 ? Int(rng.next() % 5) : (bytes.first == 3 && bytes.count > 1 ? Int(min(bytes[1], 3)) : 0)
            do {
                _ = try bytes.withUnsafeBytes { b in
                    try fakeFDs.withUnsafeBufferPointer {
                        try ChannelCodec.decode(b, fdCount: fdCount, fds: UnsafeBufferPointer(rebasing: $0[0..<fdCount]))
                    }
                }
                decoded += 1
            } catch {
                faults += 1
            }
        }
        XCTAssertEqual(decoded + faults, 100_000)
        XCTAssertGreaterThan(decoded, 1000, "mutations of valid messages should often still decode")
        XCTAssertGreaterThan(faults, 50_000)
    }
}

/// A small deterministic generator, so a fuzz failure can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
