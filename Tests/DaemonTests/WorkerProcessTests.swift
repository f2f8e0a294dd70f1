import XCTest
import CShim
import Shared
@testable import SqutunSystem
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// The real worker: the built `squtun` binary started as `squtun --worker`
/// with its channel on fd 3, as Spawn starts it, and this test as the
/// helper, answering its requests over the socketpair. It checks what the
/// worker asks for, in which order, that it says ready and runs its data
/// path under its filter, and that a wrong answer ends it with one line.
final class WorkerProcessTests: XCTestCase {
    private var directories: [String] = []
    private var devices: [String] = []

    override func tearDown() {
        directories.forEach { TestSupport.removeTree($0) }
        directories = []
        for name in devices { TestSupport.ip("link", "del", name) }
        devices = []
        super.tearDown()
    }

    /// Next to the test runner, where SwiftPM builds the products.
    static let binary: String = {
        var path = [UInt8](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &path, path.count)
        let runner = n > 0 ? String(decoding: path[..<n], as: UTF8.self) : "."
        return String(runner[..<(runner.lastIndex(of: "/") ?? runner.endIndex)]) + "/squtun"
    }()

    private func key() -> SecretBytes {
        (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    /// The helper's side of one worker.
    struct FakeHelper: ~Copyable {
        let pid: pid_t
        let channel: Channel
        /// The worker's stdout and stderr (empty unless it crashes: it logs over the channel).
        let output: FileDescriptor
        /// Every message the worker sent, in order.
        var received: [ChannelMessage] = []

        /// The next message from the worker (within `ms`).
        mutating func next(within ms: Int32 = 10_000) throws -> ChannelMessage {
            var p = pollfd(fd: channel.fd.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, ms) == 1 else { throw ChildCheckFailed(description: "the worker sent nothing for \(ms) ms") }
            let message = try channel.receive(from: .worker)
            received.append(message)
            return message
        }

        /// The next request, log lines skipped.
        mutating func nextRequest() throws -> ChannelMessage {
            while true {
                let message = try next()
                if case .log = message { continue }
                return message
            }
        }

        /// Log lines until the worker hangs up; then its exit status.
        mutating func finish() throws -> (status: Spawn.ChildStatus?, logs: [String]) {
            var logs: [String] = []
            while true {
                do {
                    if case let .log(_, text) = try next() { logs.append(text) }
                } catch PrivsepError.channelClosed {
                    break
                }
            }
            let status = try Spawn.wait(pid)
            return (status, logs)
        }

        var requests: [ChannelMessageType] {
            received.map(\.type).filter { $0 != .log }
        }

        var logs: [String] {
            received.compactMap { if case let .log(_, text) = $0 { return text } else { return nil } }
        }
    }

    private func startWorker() throws -> FakeHelper {
        try XCTSkipUnless(access(Self.binary, X_OK) == 0, "no squtun binary at \(Self.binary)")
        let pair = try Channel.makePair()
        let output = try FileDescriptor.makePipe()
        let pid = try Spawn.spawn(path: Self.binary, arguments: Spawn.workerArguments, environment: Spawn.workerEnvironment,
                                  fileMap: [(pair.worker.fd, Channel.workerFD.rawValue), (output.write, 1), (output.write, 2)])
        output.write.close()
        return FakeHelper(pid: pid, channel: pair.helper, output: output.read)
    }

    /// `chroot` matters only to a worker that gets as far as the drop;
    /// the tests that stop it during setup leave the default.
    private func config(interface: String, peer: SocketAddress?, chroot: String = "/nonexistent") -> WorkerConfig {
        WorkerConfig(session: 0x5157_0000_0000_0001, startTimeMs: WallClock.nowMs(), skewSeconds: 30, keepaliveSeconds: 1,
                     uid: 65534, gid: 65534, peer: peer, chrootPath: chroot, interface: interface)
    }

    /// The whole life of a worker: it asks hello → config, keyRequest →
    /// key, fdsRequest → fds, says ready, and then, dropped into an empty
    /// chroot as nobody and under its seccomp filter, runs the data path:
    /// a keepalive to its peer (sendmmsg), a status reply (accept4,
    /// SO_PEERCRED), a status dump on SIGUSR1 (signal, wake pipe, log
    /// lines over the channel), a counted drop of a forged datagram
    /// (recvmmsg), and exit 0 on SIGTERM.
    func testTheRealWorkerAsksForItsSetupAndRuns() throws {
        try XCTSkipIf(geteuid() != 0, "needs root for the tun device and the drop")
        let chroot = TestSupport.makeTemporaryDirectory(), run = TestSupport.makeTemporaryDirectory()
        directories += [chroot, run]
        XCTAssertEqual(chmod(chroot, 0o755), 0)
        let name = TestSupport.uniqueName("sqtw")
        devices.append(name)
        XCTAssertEqual(TestSupport.ip("tuntap", "add", "dev", name, "mode", "tun").status, .exited(0))
        let tun = try Tun.attach(name: name)
        let udp = try UDPSocket.open(port: 0, bindAddress: "127.0.0.1")
        let workerAddress = udp.localAddress
        let peer = try UDPSocket.open(port: 0, bindAddress: "127.0.0.1")
        let control = try ControlSocket.listen(path: run + "/c.sock")
        let wanted = config(interface: name, peer: peer.localAddress, chroot: chroot)

        var helper = try startWorker()
        defer { kill(helper.pid, SIGKILL); _ = try? Spawn.wait(helper.pid); helper.output.close() }
        guard case .hello(let version) = try helper.nextRequest() else { return XCTFail("first request: \(helper.received)") }
        XCTAssertEqual(version, ChannelCodec.monitorVersion)
        try helper.channel.send(.config(wanted))
        XCTAssertEqual(try helper.nextRequest(), .keyRequest)
        try helper.channel.send(.key(key()))
        XCTAssertEqual(try helper.nextRequest(), .fdsRequest)
        try helper.channel.send(.fds([PassedFD(.tun, tun.fd), PassedFD(.udp, udp.fd), PassedFD(.control, control)]))
        tun.close()
        udp.close()
        control.close()
        XCTAssertEqual(try helper.nextRequest(), .ready)
        XCTAssertEqual(helper.requests, [.hello, .keyRequest, .fdsRequest, .ready])

        // Dropped and filtered, as it said.
        let status = (try? String(contentsOfProcFile: "/proc/\(helper.pid)/status")) ?? ""
        XCTAssertTrue(status.contains("Seccomp:\t2"), status)
        XCTAssertTrue(status.contains("Uid:\t65534\t65534\t65534\t65534"), status)

        // A keepalive to the configured peer at once.
        XCTAssertTrue(ChildScenarios.waitReadable(peer.fd, 5000), "no keepalive from the worker")
        var inbox = [UInt8](repeating: 0, count: 2048)
        let got = try inbox.withUnsafeMutableBytes { try peer.receive(into: $0) }
        XCTAssertEqual(got?.from, workerAddress)
        XCTAssertGreaterThan(got?.count ?? 0, 0)

        // A forged datagram: dropped and counted, the worker goes on.
        let forged = [UInt8](repeating: 0x51, count: 64)
        XCTAssertEqual(try forged.withUnsafeBytes { try peer.send($0, to: workerAddress) }, true)
        func drops(_ text: String) -> Int {
            text.split(separator: "\n").filter { $0.hasPrefix("drop-") }
                .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
        }
        var reply = ""
        for _ in 0..<50 {
            reply = try ControlSocket.connectAndRead(path: run + "/c.sock", interface: name)
            if drops(reply) > 0 { break }
            usleep(50_000)
        }
        XCTAssertTrue(reply.hasPrefix("interface: \(name)\n"), reply)
        XCTAssertTrue(reply.contains("own-session: \(wanted.session)\n"), reply)
        XCTAssertEqual(drops(reply), 1, reply)

        // SIGUSR1: the status as log lines over the channel.
        kill(helper.pid, SIGUSR1)
        var sawStatus = false
        for _ in 0..<60 where !sawStatus {
            if case let .log(_, text) = try helper.next(within: 5000), text == "interface: \(name)" { sawStatus = true }
        }
        XCTAssertTrue(sawStatus, "no status lines after SIGUSR1: \(helper.logs)")

        kill(helper.pid, SIGTERM)
        let end = try helper.finish()
        XCTAssertEqual(end.status, .exited(0), "\(end.logs) \(TestSupport.readAll(helper.output))")
        XCTAssertTrue(end.logs.contains("stopping on signal \(SIGTERM)"), "\(end.logs)")
    }

    /// Answers the worker's setup up to its request `stop`, then sends
    /// `wrong` (raw bytes) instead of the right answer; returns how the
    /// worker ended and what it logged.
    private func answerWrongly(at stop: ChannelMessageType, with wrong: [UInt8], fds: [FileDescriptor] = [])
        throws -> (requests: [ChannelMessageType], status: Spawn.ChildStatus?, logs: [String])
    {
        var helper = try startWorker()
        defer { helper.output.close() }
        while true {
            let request = try helper.nextRequest()
            if request.type == stop {
                let raw = fds.map(\.rawValue)
                let sent = wrong.withUnsafeBytes { b in
                    raw.withUnsafeBufferPointer {
                        squtun_send_fds(helper.channel.fd.rawValue, b.baseAddress, b.count, $0.baseAddress, Int32(raw.count), 0)
                    }
                }
                XCTAssertEqual(sent, wrong.count)
                break
            }
            switch request {
            case .hello: try helper.channel.send(.config(config(interface: "sqtw0", peer: nil)))
            case .keyRequest: try helper.channel.send(.key(key()))
            default: XCTFail("unexpected request \(request)")
            }
        }
        let end = try helper.finish()
        return (helper.requests, end.status, end.logs)
    }

    private func encoded(_ message: ChannelMessage) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: ChannelCodec.maxMessageBytes)
        let n = try buffer.withUnsafeMutableBytes { try ChannelCodec.encode(message, into: $0) }
        return Array(buffer[0..<n])
    }

    func testAWrongAnswerEndsTheWorkerWithOneLine() throws {
        let end = try answerWrongly(at: .hello, with: try encoded(.key(key())))
        XCTAssertEqual(end.requests, [.hello])
        XCTAssertEqual(end.status, .exited(1))
        XCTAssertEqual(end.logs, ["worker: asked the helper for hello, got a key message"])
    }

    func testAConfigOfAnotherVersionEndsTheWorkerWithOneLine() throws {
        var bytes = try encoded(.config(config(interface: "sqtw0", peer: nil)))
        bytes[1] = 1
        let end = try answerWrongly(at: .hello, with: bytes)
        XCTAssertEqual(end.status, .exited(1))
        XCTAssertEqual(end.logs, [PrivsepError.channelMessage(.unsupportedVersion(type: .config, got: 1, supported: 3)).description])
        XCTAssertTrue(end.logs.first?.contains("version 1 config message; this one reads version 3") == true, "\(end.logs)")
    }

    /// An answer without the tun descriptor: the worker closes what it
    /// got and stops.
    func testDescriptorsWithoutTheTunEndTheWorkerWithOneLine() throws {
        let pipe = try FileDescriptor.makePipe()
        let end = try answerWrongly(at: .fdsRequest, with: [ChannelMessageType.fds.rawValue, 1, PassedFDRole.udp.rawValue],
                                    fds: [pipe.write])
        pipe.write.close()
        XCTAssertEqual(end.requests, [.hello, .keyRequest, .fdsRequest])
        XCTAssertEqual(end.status, .exited(1))
        XCTAssertEqual(end.logs, ["worker: the helper's descriptors lack the tun descriptor"])
        var byte: UInt8 = 0
        XCTAssertEqual(Glibc.read(pipe.read.rawValue, &byte, 1), 0, "the worker's copy is closed (it exited)")
        pipe.read.close()
    }
}

extension String {
    /// A /proc file's text (read(2) until end-of-file).
    init(contentsOfProcFile path: String) throws {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        self = TestSupport.readAll(fd)
    }
}
