import XCTest
import CShim
import Shared
@testable import SqutunSystem
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// The helper's dispatch table, served over a real socketpair: what the
/// worker may ask when, and that everything else is refused.
final class MonitorTests: XCTestCase {
    private var pipes: [(read: FileDescriptor, write: FileDescriptor)] = []

    override func tearDown() {
        for p in pipes { p.read.close() }
        pipes = []
        super.tearDown()
    }

    private func key() -> SecretBytes {
        (0..<32).map { UInt8($0 | 0x40) }.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    /// Provisions whose three descriptors are pipe write ends; the test
    /// keeps the read ends, which see end-of-file once every copy is closed.
    private func provisions() throws -> WorkerProvisions {
        let made = try (0..<3).map { _ in try FileDescriptor.makePipe() }
        pipes += made
        return WorkerProvisions(config: ChannelTests.sampleConfig, key: key(),
                                fds: zip([PassedFDRole.tun, .udp, .control], made).map { PassedFD($0, $1.write) })
    }

    /// True once no write end of pipe `i` is open anywhere in this process.
    private func allClosed(_ i: Int) -> Bool {
        var byte: UInt8 = 0
        _ = fcntl(pipes[i].read.rawValue, F_SETFL, O_NONBLOCK)
        return Glibc.read(pipes[i].read.rawValue, &byte, 1) == 0
    }

    /// Nothing is waiting on `channel` (no answer was sent).
    private func nothingQueued(_ channel: borrowing Channel) -> Bool {
        var p = pollfd(fd: channel.fd.rawValue, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    func testTheTableAsDocumented() {
        let rows = Monitor.table.map { "\($0.request) \($0.phases.contains(.setup) ? "S" : "-")\($0.phases.contains(.running) ? "R" : "-") \($0.once ? "once" : "any") after \($0.after)" }
        XCTAssertEqual(rows, [
            "hello S- once after []",
            "keyRequest S- once after [SqutunPrivsep.ChannelMessageType.hello]",
            "fdsRequest S- once after [SqutunPrivsep.ChannelMessageType.hello]",
            "ready S- once after [SqutunPrivsep.ChannelMessageType.hello, SqutunPrivsep.ChannelMessageType.keyRequest, SqutunPrivsep.ChannelMessageType.fdsRequest]",
            "log SR any after []",
        ])
        let serverRows = Monitor.serverTable.map { "\($0.request) \($0.phases.contains(.setup) ? "S" : "-")\($0.phases.contains(.running) ? "R" : "-") \($0.once ? "once" : "any") after \($0.after)" }
        XCTAssertEqual(serverRows, [
            "hello S- once after []",
            "fdsRequest S- once after [SqutunPrivsep.ChannelMessageType.hello]",
            "ready S- once after [SqutunPrivsep.ChannelMessageType.hello, SqutunPrivsep.ChannelMessageType.fdsRequest]",
            "log SR any after []",
            "clientTunRequest -R any after []",
            "clientClosed -R any after []",
        ])
        // Every request type has a row in one of the tables; no answer type has one.
        let requests = Set(ChannelMessageType.allCases.filter { $0.sender == .worker })
        XCTAssertEqual(Set(Monitor.table.map(\.request)).union(Monitor.serverTable.map(\.request)), requests)
        XCTAssertTrue(Set(Monitor.table.map(\.request)).isDisjoint(with: [.clientTunRequest, .clientClosed]),
                      "a point-to-point worker asks for no client tun")
        XCTAssertFalse(Monitor.serverTable.contains { $0.request == .keyRequest }, "a server's worker gets no key at setup")
    }

    /// The worker's setup, served: each answer arrives, the key is wiped
    /// and the helper's descriptors are closed once handed over.
    func testSetupIsAnsweredFromTheTable() throws {
        let pair = try Channel.makePair()
        let helper = pair.helper, worker = pair.worker
        var held = try provisions()
        let given = held.key!
        var monitor = Monitor()

        XCTAssertEqual(try monitor.dispatch(.hello(version: 1), provisions: &held, channel: helper), .answered)
        XCTAssertEqual(try worker.receive(from: .helper), .config(ChannelTests.sampleConfig))
        XCTAssertEqual(try monitor.dispatch(.log(level: .warning, text: "early"), provisions: &held, channel: helper),
                       .log(.warning, "early"))
        XCTAssertEqual(try monitor.dispatch(.keyRequest, provisions: &held, channel: helper), .answered)
        XCTAssertEqual(try worker.receive(from: .helper), .key(key()))
        XCTAssertNil(held.key, "the helper keeps no key")
        XCTAssertTrue(given.withUnsafeBytes { $0.allSatisfy { $0 == 0 } }, "and wiped the one it had")

        XCTAssertEqual(try monitor.dispatch(.fdsRequest, provisions: &held, channel: helper), .answered)
        guard case let .fds(list) = try worker.receive(from: .helper) else { return XCTFail("expected fds") }
        XCTAssertEqual(list.map(\.role), [.tun, .udp, .control])
        XCTAssertTrue(held.fds.isEmpty)
        XCTAssertFalse(allClosed(0), "the worker's copy is still open")
        list.forEach { $0.fd.close() }
        XCTAssertTrue((0..<3).allSatisfy(allClosed), "the helper closed its copies")

        XCTAssertEqual(monitor.phase, .setup)
        XCTAssertEqual(try monitor.dispatch(.ready, provisions: &held, channel: helper), .ready)
        XCTAssertEqual(monitor.phase, .running)
        XCTAssertEqual(try monitor.dispatch(.log(level: .error, text: "late"), provisions: &held, channel: helper),
                       .log(.error, "late"))
        XCTAssertTrue(nothingQueued(worker), "no answer to ready or log")
    }

    /// After ready, no setup request is served: each is a request in the
    /// wrong phase.
    func testSetupRequestsAfterReadyAreRefused() throws {
        let pair = try Channel.makePair()
        let helper = pair.helper, worker = pair.worker
        var held = try provisions()
        var monitor = Monitor()
        for request: ChannelMessage in [.hello(version: 1), .keyRequest, .fdsRequest] {
            _ = try monitor.dispatch(request, provisions: &held, channel: helper)
            if case let .fds(list) = try worker.receive(from: .helper) { list.forEach { $0.fd.close() } }
        }
        XCTAssertEqual(try monitor.dispatch(.ready, provisions: &held, channel: helper), .ready)
        for request: ChannelMessage in [.hello(version: 1), .keyRequest, .fdsRequest, .ready] {
            XCTAssertEqual(try monitor.dispatch(request, provisions: &held, channel: helper),
                           .refused(.wrongPhase(request.type, .running)))
        }
        XCTAssertTrue(nothingQueued(worker))
        XCTAssertEqual(MonitorRefusal.wrongPhase(.hello, .running).description, "a hello request after ready")
    }

    /// A once-request asked again during setup is refused, and nothing is
    /// handed out twice.
    func testASecondOnceRequestIsRefused() throws {
        let pair = try Channel.makePair()
        let helper = pair.helper, worker = pair.worker
        var held = try provisions()
        var monitor = Monitor()
        for request: ChannelMessage in [.hello(version: 1), .keyRequest, .fdsRequest] {
            XCTAssertEqual(try monitor.dispatch(request, provisions: &held, channel: helper), .answered)
            if case let .fds(list) = try worker.receive(from: .helper) { list.forEach { $0.fd.close() } }
            XCTAssertEqual(try monitor.dispatch(request, provisions: &held, channel: helper),
                           .refused(.repeated(request.type)))
            XCTAssertTrue(nothingQueued(worker), "\(request.type) answered twice")
        }
        XCTAssertEqual(MonitorRefusal.repeated(.hello).description, "a second hello request")
    }

    /// Out of order, an answer type, or a hello of another monitor version.
    func testOtherRefusals() throws {
        let pair = try Channel.makePair()
        let helper = pair.helper, worker = pair.worker
        var held = try provisions()
        var monitor = Monitor()
        XCTAssertEqual(try monitor.dispatch(.keyRequest, provisions: &held, channel: helper),
                       .refused(.outOfOrder(.keyRequest, before: .hello)))
        XCTAssertEqual(try monitor.dispatch(.ready, provisions: &held, channel: helper),
                       .refused(.outOfOrder(.ready, before: .hello)))
        for answer: ChannelMessage in [.config(ChannelTests.sampleConfig), .key(key()), .fds([])] {
            XCTAssertEqual(try monitor.dispatch(answer, provisions: &held, channel: helper),
                           .refused(.notARequest(answer.type)))
        }
        XCTAssertEqual(try monitor.dispatch(.hello(version: 2), provisions: &held, channel: helper),
                       .refused(.rejected(.hello, "the worker speaks monitor version 2, this helper 1")))
        XCTAssertTrue(nothingQueued(worker))
        // Ready needs the key and the descriptors first.
        var fresh = Monitor()
        var more = try provisions()
        _ = try fresh.dispatch(.hello(version: 1), provisions: &more, channel: helper)
        _ = try fresh.dispatch(.keyRequest, provisions: &more, channel: helper)
        XCTAssertEqual(try fresh.dispatch(.ready, provisions: &more, channel: helper),
                       .refused(.outOfOrder(.ready, before: .fdsRequest)))
        XCTAssertEqual(fresh.phase, .setup)
        more.release()
        held.release()
    }

    /// What setup did not hand out is wiped and closed.
    func testReleaseWipesAndCloses() throws {
        var held = try provisions()
        let key = held.key!
        held.release()
        XCTAssertNil(held.key)
        XCTAssertTrue(key.withUnsafeBytes { $0.allSatisfy { $0 == 0 } })
        XCTAssertTrue((0..<3).allSatisfy(allClosed))
    }

    /// A request added for the running phase (as a per-client tun would
    /// be): a row of its own, refused during setup, served any number of
    /// times after ready.
    func testARunningPhaseRowIsServedOnlyAfterReady() throws {
        let pair = try Channel.makePair()
        let helper = pair.helper
        var held = try provisions()
        let later = MonitorEntry(.fdsRequest, phases: [.running], once: false) { _, _, _ throws(PrivsepError) in .answered }
        let table = Monitor.table.filter { $0.request == .hello || $0.request == .log }
            + [MonitorEntry(.ready, phases: [.setup], once: true, after: [.hello]) { _, _, _ throws(PrivsepError) in .ready },
               later]
        var monitor = Monitor(table: table)
        XCTAssertEqual(try monitor.dispatch(.fdsRequest, provisions: &held, channel: helper),
                       .refused(.wrongPhase(.fdsRequest, .setup)))
        XCTAssertEqual(try monitor.dispatch(.hello(version: 1), provisions: &held, channel: helper), .answered)
        XCTAssertEqual(try monitor.dispatch(.ready, provisions: &held, channel: helper), .ready)
        for _ in 0..<3 {
            XCTAssertEqual(try monitor.dispatch(.fdsRequest, provisions: &held, channel: helper), .answered)
        }
        XCTAssertEqual(try monitor.dispatch(.keyRequest, provisions: &held, channel: helper), .refused(.notARequest(.keyRequest)))
        held.release()
    }
}
