import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
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

    // A directory shared with a less trusted user (the package's sticky,
    // group-writable /run/squtun): what that user plants at root's pid
    // file's path is removed, never followed or written into.

    private func owner(_ p: String) -> (uid: UInt32, links: UInt) {
        var st = stat()
        XCTAssertEqual(lstat(p, &st), 0)
        return (st.st_uid, UInt(st.st_nlink))
    }

    func testOtherUsersFileIsReplacedNotWritten() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to own files as another uid")
        write("\(getpid())\n")  // even naming a live process: the lock decides
        XCTAssertEqual(chown(path, 65534, 65534), 0)
        let planted = open(path, O_RDONLY)
        defer { close(planted) }
        let file = try acquire(pid: 4321)
        XCTAssertEqual(file.note, "removed \(path): a file owned by uid 65534, not squtun's pid file")
        var st = stat()
        XCTAssertEqual(fstat(planted, &st), 0)
        XCTAssertEqual(st.st_nlink, 0, "the planted file is unlinked, not reused")
        XCTAssertEqual(TestSupport.readAll(FileDescriptor(rawValue: planted)), "\(getpid())\n", "and not written")
        XCTAssertEqual(owner(path).uid, 0, "root's file: the other user cannot change the pid in it")
        XCTAssertEqual(contents(), "4321\n")
    }

    func testHardLinkIsNotWrittenThrough() throws {
        let victim = directory + "/victim"
        let fd = open(victim, O_WRONLY | O_CREAT, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = "keep me\n".withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
        XCTAssertEqual(link(victim, path), 0)
        let file = try acquire()
        XCTAssertEqual(file.note, "removed \(path): a file with 2 names, not squtun's pid file")
        XCTAssertEqual(contents(), "\(getpid())\n")
        XCTAssertEqual(owner(path).links, 1)
        let v = open(victim, O_RDONLY)
        XCTAssertEqual(TestSupport.readAll(FileDescriptor(rawValue: v)), "keep me\n", "the other name's file untouched")
        close(v)
    }

    func testOtherUsersSymlinkIsRemovedNotFollowed() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to own files as another uid")
        let target = directory + "/target"
        XCTAssertEqual(symlink(target, path), 0)
        XCTAssertEqual(lchown(path, 65534, 65534), 0)
        let file = try acquire()
        XCTAssertEqual(file.note, "removed \(path): a symlink owned by uid 65534, not squtun's pid file")
        XCTAssertEqual(contents(), "\(getpid())\n")
        XCTAssertEqual(owner(path).uid, 0)
        XCTAssertNotEqual(access(target, F_OK), 0, "nothing created through the link")
    }

    func testOtherUsersLockedFileMeansRunning() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to own files as another uid")
        write("\(getpid())\n")
        XCTAssertEqual(chown(path, 65534, 65534), 0)
        let holder = open(path, O_RDONLY)
        defer { close(holder) }
        XCTAssertEqual(flock(holder, LOCK_EX), 0)  // a squtun of that user runs with it
        XCTAssertThrowsError(try acquire(pid: 4321)) { error in
            XCTAssertEqual(error as? SystemError, .alreadyRunning(interface: "sqt0", pid: getpid(), path: path))
        }
        XCTAssertEqual(owner(path).uid, 65534, "left alone")
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
