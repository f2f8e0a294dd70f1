import XCTest
@testable import squtund
#if canImport(Glibc)
import Glibc
#endif

final class PidFileTests: XCTestCase {
    private var directory = ""
    private var path = ""
    private var held: [PidFile] = []

    override func setUp() {
        super.setUp()
        directory = TestSupport.makeTemporaryDirectory()
        path = directory + "/squtun-sqt0.pid"
    }

    override func tearDown() {
        held.forEach { $0.remove() }
        held = []
        TestSupport.removeTree(directory)
        super.tearDown()
    }

    private func acquire(pid: Int32 = getpid()) throws -> PidFile {
        let file = try PidFile.acquire(path: path, interface: "sqt0", pid: pid)
        held.append(file)
        return file
    }

    private func write(_ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    private func contents() -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return TestSupport.readAll(FileDescriptor(rawValue: fd))
    }

    func testFreshFile() throws {
        let file = try acquire()
        XCTAssertNil(file.note)
        XCTAssertEqual(contents(), "\(getpid())\n")
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o644)
        XCTAssertTrue(file.remove())
        held = []
        XCTAssertNil(contents(), "removed")
    }

    func testLiveProcessNamedInFile() throws {
        write("\(getpid())\n")  // the test process: certainly alive
        XCTAssertThrowsError(try acquire(pid: 1234)) { error in
            XCTAssertEqual(error as? SystemError, .alreadyRunning(interface: "sqt0", pid: getpid(), path: path))
            XCTAssertEqual("\(error)", "squtun is already running for sqt0 (pid \(getpid()), \(path)); stop it first with: kill \(getpid()) (if pid \(getpid()) is not squtun, the pid file is stale: remove \(path))")
        }
        XCTAssertEqual(contents(), "\(getpid())\n", "left alone")
    }

    func testLockHolderWins() throws {
        _ = try acquire()
        // A second start (another open file description) cannot take the lock.
        XCTAssertThrowsError(try PidFile.acquire(path: path, interface: "sqt0", pid: 4321)) { error in
            XCTAssertEqual(error as? SystemError, .alreadyRunning(interface: "sqt0", pid: getpid(), path: path))
        }
        XCTAssertEqual(contents(), "\(getpid())\n")
    }

    func testStalePid() throws {
        write("\(TestSupport.deadPid)\n")
        let file = try acquire()
        XCTAssertEqual(file.note, "removed stale pid file \(path) (pid \(TestSupport.deadPid) not running)")
        XCTAssertEqual(contents(), "\(getpid())\n")
    }

    func testGarbage() throws {
        for garbage in ["hello\n", "12abc", "-5\n", "0\n", "\n", "99999999999999\n", " 12\n"] {
            write(garbage)
            let file = try acquire()
            XCTAssertEqual(file.note, "removed stale pid file \(path) (it did not hold a pid)", garbage)
            XCTAssertEqual(contents(), "\(getpid())\n")
            XCTAssertTrue(file.remove())
            held = []
        }
    }

    func testRemoveOnlyIfStillOurs() throws {
        let file = try acquire()
        write("777\n")
        XCTAssertFalse(file.remove())
        held = []
        XCTAssertEqual(contents(), "777\n")
    }

    func testSymlinkIsRefused() throws {
        let target = directory + "/target"
        XCTAssertEqual(symlink(target, path), 0)
        XCTAssertThrowsError(try acquire()) { error in
            XCTAssertEqual(error as? SystemError, .pidFileFailed(path: path, operation: "open", errno: Errno(ELOOP)))
        }
        XCTAssertNotEqual(access(target, F_OK), 0, "nothing created through the link")
    }

    func testParentDirectoryIsCreatedForRoot() throws {
        try XCTSkipIf(geteuid() != 0, "only root creates the directory")
        path = directory + "/run/squtun-sqt0.pid"
        let old = umask(0o077)
        defer { umask(old) }
        _ = try acquire()
        var st = stat()
        XCTAssertEqual(stat(directory + "/run", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o755)
    }

    func testParse() {
        XCTAssertEqual(PidFile.parse(Array("1234\n".utf8)), .pid(1234))
        XCTAssertEqual(PidFile.parse(Array("1234".utf8)), .pid(1234))
        XCTAssertEqual(PidFile.parse([]), .empty)
        XCTAssertEqual(PidFile.parse(Array("1234\n\n".utf8)), .garbage)
        XCTAssertEqual(PidFile.parse(Array("2147483648".utf8)), .garbage)
        XCTAssertFalse(PidFile.isAlive(0), "kill(0) would address the process group")
        XCTAssertFalse(PidFile.isAlive(-1))
        XCTAssertTrue(PidFile.isAlive(getpid()))
        XCTAssertTrue(PidFile.isAlive(1))
        XCTAssertFalse(PidFile.isAlive(TestSupport.deadPid))
    }
}
