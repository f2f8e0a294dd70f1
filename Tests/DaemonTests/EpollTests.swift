import XCTest
import Shared
@testable import SqutunSystem
#if canImport(Glibc)
import Glibc
#endif

/// The server loop's epoll wrapper on real pipes.
final class EpollTests: XCTestCase {
    private var pipes: [(read: FileDescriptor, write: FileDescriptor)] = []

    override func tearDown() {
        pipes.forEach { $0.read.close(); $0.write.close() }
        pipes = []
        super.tearDown()
    }

    private func makePipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
        let pipe = try FileDescriptor.makePipe(nonBlocking: true)
        pipes.append(pipe)
        return pipe
    }

    private func poke(_ fd: FileDescriptor) throws {
        XCTAssertEqual(try [UInt8(1)].withUnsafeBytes { try fd.write($0) }, 1)
    }

    func testAReadablePipeComesBackWithItsToken() throws {
        let epoll = try Epoll(capacity: 8)
        XCTAssertTrue(epoll.fd.isCloseOnExec)
        let quiet = try makePipe()
        let busy = try makePipe()
        try epoll.add(quiet.read, events: .readable, token: 7)
        try epoll.add(busy.read, events: .readable, token: 0xdead_beef_0000_0001)
        XCTAssertEqual(try epoll.wait(timeoutMs: 0), 0, "nothing is readable yet")

        try poke(busy.write)
        XCTAssertEqual(try epoll.wait(timeoutMs: 1000), 1)
        XCTAssertEqual(epoll.token(at: 0), 0xdead_beef_0000_0001)
        XCTAssertEqual(epoll.events(at: 0), .readable)

        // A new token for the same fd.
        try epoll.modify(busy.read, events: .readable, token: 99)
        XCTAssertEqual(try epoll.wait(timeoutMs: 1000), 1)
        XCTAssertEqual(epoll.token(at: 0), 99)

        // Removed: still readable, no longer reported.
        try epoll.remove(busy.read)
        XCTAssertEqual(try epoll.wait(timeoutMs: 0), 0)

        // The writer gone: a hang-up, reported without being asked for.
        quiet.write.close()
        pipes[0].write = FileDescriptor(rawValue: -1)
        XCTAssertEqual(try epoll.wait(timeoutMs: 1000), 1)
        XCTAssertEqual(epoll.token(at: 0), 7)
        XCTAssertTrue(epoll.events(at: 0).contains(.hangUp), "\(epoll.events(at: 0))")
        epoll.close()
    }

    func testMistakesAreErrnos() throws {
        let epoll = try Epoll(capacity: 1)
        let pipe = try makePipe()
        try epoll.add(pipe.read, events: .readable, token: 1)
        XCTAssertThrowsError(try epoll.add(pipe.read, events: .readable, token: 2)) {
            XCTAssertEqual($0 as? Errno, Errno(EEXIST))
        }
        XCTAssertThrowsError(try epoll.modify(pipe.write, events: .writable, token: 2)) {
            XCTAssertEqual($0 as? Errno, Errno(ENOENT))
        }
        XCTAssertThrowsError(try epoll.remove(pipe.write)) { XCTAssertEqual($0 as? Errno, Errno(ENOENT)) }
        XCTAssertThrowsError(try epoll.add(FileDescriptor(rawValue: 999_999), events: .readable, token: 3)) {
            XCTAssertEqual($0 as? Errno, Errno(EBADF))
        }
    }

    /// More ready fds than the capacity: each wait reports at most
    /// `capacity`, and the rest come in later waits (level-triggered).
    func testMoreReadyThanCapacity() throws {
        let epoll = try Epoll(capacity: 2)
        for token in UInt64(0)..<5 {
            let pipe = try makePipe()
            try epoll.add(pipe.read, events: .readable, token: token)
            try poke(pipe.write)
        }
        XCTAssertEqual(try epoll.wait(timeoutMs: 1000), 2)
        var seen = Set<UInt64>()
        var waits = 0
        while seen.count < 5 && waits < 10 {
            let n = try epoll.wait(timeoutMs: 1000)
            waits += 1
            XCTAssertEqual(n, min(2, 5 - seen.count))
            for i in 0..<n {
                let token = epoll.token(at: i)
                XCTAssertFalse(seen.contains(token), "\(token) reported again after it was drained")
                seen.insert(token)
                pipes[Int(token)].read.drain()  // so that the next wait reports others
            }
        }
        XCTAssertEqual(seen, [0, 1, 2, 3, 4])
        XCTAssertEqual(waits, 3)
        XCTAssertEqual(try epoll.wait(timeoutMs: 0), 0)
    }

    func testAWaitEndsAtItsTimeout() throws {
        let epoll = try Epoll(capacity: 1)
        let pipe = try makePipe()
        try epoll.add(pipe.read, events: .readable, token: 1)
        let start = MonotonicClock.nowMs()
        XCTAssertEqual(try epoll.wait(timeoutMs: 50), 0)
        XCTAssertGreaterThanOrEqual(MonotonicClock.nowMs() - start, 49)
    }
}

extension ChildScenarios {
    /// The worker's filter lets the server loop use epoll: create, add,
    /// wait, modify, remove, all after the filter is in.
    static func epollUnderFilter() throws {
        let pipe = try FileDescriptor.makePipe(nonBlocking: true)
        try Privileges.setNoNewPrivileges()
        try Seccomp.install(allThreads: false)
        say("filter installed")
        let epoll = try Epoll(capacity: 4)
        try epoll.add(pipe.read, events: .readable, token: 41)
        try check(try epoll.wait(timeoutMs: 0) == 0, "readable before a write")
        try check(try [UInt8(1)].withUnsafeBytes { try pipe.write.write($0) } == 1, "write")
        try check(try epoll.wait(timeoutMs: 1000) == 1 && epoll.token(at: 0) == 41, "token 41 did not come back")
        try epoll.modify(pipe.read, events: .readable, token: 42)
        try check(try epoll.wait(timeoutMs: 1000) == 1 && epoll.token(at: 0) == 42, "token 42 did not come back")
        try epoll.remove(pipe.read)
        try check(try epoll.wait(timeoutMs: 10) == 0, "removed fd still reported")
        epoll.close()
        say("epoll works")
    }
}
