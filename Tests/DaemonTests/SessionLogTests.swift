import Glibc
import Shared
import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep

/// The session log next to the pid file (SessionLog): real files in a
/// temporary directory.
final class SessionLogTests: XCTestCase {
    var dir = ""

    override func setUp() {
        var template = Array("/tmp/squtun-sessionlog.XXXXXX".utf8CString)
        dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    override func tearDown() {
        for name in ["t.sessions", "t.sessions.new", "elsewhere"] { unlink(dir + "/" + name) }
        rmdir(dir)
    }

    func start(_ session: UInt64) -> RunStart { RunStart(session: session, wallMs: 1, monotonicMs: 2) }

    func testRecordsRunsAndHandsBackTheFormerOnes() {
        let path = SessionLog.path(forPidFile: dir + "/t.pid")
        XCTAssertEqual(path, dir + "/t.sessions")
        let first = SessionLog.update(path: path, start: start(0x1000_0000_0000_0001))
        XCTAssertNil(first.warning)
        XCTAssertEqual(first.former, [])
        let second = SessionLog.update(path: path, start: start(0x1000_0000_1000_0002))
        XCTAssertEqual(second.former, [0x1000_0000_0000_0001])
        XCTAssertEqual(second.start.session, 0x1000_0000_1000_0002, "greater already: unchanged")
        XCTAssertEqual(SessionLog.read(path: path).sessions, [0x1000_0000_0000_0001, 0x1000_0000_1000_0002])
    }

    /// The clock went back between runs: the new session is moved one tick
    /// above the greatest former one (random low bits kept), so the peer
    /// does not refuse it as old.
    func testSessionMovesAboveFormerOnesWhenTheClockWentBack() {
        let path = dir + "/t.sessions"
        _ = SessionLog.update(path: path, start: start(0x2000_0000_00ab_cdef))
        let later = SessionLog.update(path: path, start: start(0x1000_0000_0012_3456))
        XCTAssertEqual(later.start.session, 0x2000_0000_0112_3456)
        XCTAssertGreaterThan(later.start.session, 0x2000_0000_00ab_cdef)
    }

    func testKeepsTheLast32() {
        let path = dir + "/t.sessions"
        for i in 1...40 as ClosedRange<UInt64> { _ = SessionLog.update(path: path, start: start(i << 24)) }
        let list = SessionLog.read(path: path).sessions
        XCTAssertEqual(list.count, 32)
        XCTAssertEqual(list.first, 9 << 24)
        XCTAssertEqual(list.last, 40 << 24)
    }

    /// Trouble with the file never stops a start: a warning, and the run
    /// goes on. A symlink is not followed, a file of another user not read,
    /// garbage not half-read.
    func testBadFilesAreWarningsNotFailures() throws {
        let path = dir + "/t.sessions"
        XCTAssertEqual(symlink(dir + "/elsewhere", path), 0)
        var out = SessionLog.update(path: path, start: start(5 << 24))
        XCTAssertNotNil(out.warning)
        XCTAssertEqual(out.former, [])
        unlink(path)

        let garbage = "0123\nnot hex at all\n"
        XCTAssertTrue(FileManagerless.write(garbage, to: path))
        out = SessionLog.update(path: path, start: start(6 << 24))
        XCTAssertTrue(out.warning?.contains("not a list of 16-digit hex session ids") == true, out.warning ?? "")
        XCTAssertEqual(out.former, [])

        try XCTSkipIf(geteuid() != 0, "chown needs root")
        XCTAssertTrue(FileManagerless.write(SessionLog.hex16(7 << 24) + "\n", to: path))
        XCTAssertEqual(chown(path, 65534, 65534), 0)
        out = SessionLog.update(path: path, start: start(8 << 24))
        XCTAssertTrue(out.warning?.contains("owned by uid 65534") == true, out.warning ?? "")
        XCTAssertEqual(out.former, [])
    }
}

/// A file written with plain Glibc calls (the test does not need Foundation for it).
enum FileManagerless {
    static func write(_ text: String, to path: String) -> Bool {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return text.withCString { Glibc.write(fd, $0, strlen($0)) } == text.utf8.count
    }
}
