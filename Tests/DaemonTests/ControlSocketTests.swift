import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

final class ControlSocketTests: XCTestCase {
    private var directory = ""
    private var path = ""
    private var listeners: [FileDescriptor] = []

    override func setUp() {
        super.setUp()
        directory = TestSupport.makeTemporaryDirectory()
        XCTAssertEqual(chmod(directory, 0o755), 0)  // so another uid can reach the socket when allowed
        path = directory + "/squtun-sqt0.sock"
    }

    override func tearDown() {
        listeners.forEach { $0.close() }
        listeners = []
        ControlSocket.removeFile(path: path)
        TestSupport.removeTree(directory)
        super.tearDown()
    }

    private func listen() throws -> FileDescriptor {
        let fd = try ControlSocket.listen(path: path)
        listeners.append(fd)
        return fd
    }

    /// Runs the `squtun status` client in a child process (optionally as
    /// `uid`) while this process serves one connection with `text`.
    private func statusRound(_ listener: FileDescriptor, text: String, asUID uid: UInt32? = nil)
        throws -> (served: ControlSocket.AcceptResult, clientSaid: String)
    {
        let pipe = try FileDescriptor.makePipe()
        var environment = ["\(ChildProcess.scenarioVariable)=status-client", "SQUTUN_TEST_CONTROL=\(path)"] + Spawn.workerEnvironment
        if let uid { environment.append("SQUTUN_TEST_AS_UID=\(uid)") }
        let pid = try Spawn.spawn(path: "/proc/self/exe", arguments: ["child", "DaemonTests.ChildEntry/testChildEntry"],
                                  environment: environment, fileMap: [(pipe.write, 1), (pipe.write, 2)])
        pipe.write.close()
        // Serve the listener while collecting the child's output, until it exits.
        var served = ControlSocket.AcceptResult.nothingPending
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(5)
        loop: while Date() < deadline {
            var fds = [pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: pipe.read.rawValue, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, 500) > 0 else { continue }
            if fds[0].revents != 0 { served = ControlSocket.acceptAndReply(listener: listener, text: text) }
            if fds[1].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(pipe.read.rawValue, $0.baseAddress, $0.count) }
                if n <= 0 { break loop }
                output += chunk[0..<n]
            }
        }
        pipe.read.close()
        let text = String(decoding: output, as: UTF8.self)
        XCTAssertEqual(try Spawn.wait(pid), .exited(0), text)
        for marker in ["REPLY:", "ERROR:"] {
            if let range = text.range(of: marker) { return (served, String(text[range.lowerBound...])) }
        }
        return (served, text)
    }

    func testListenerIsRootOnly() throws {
        let fd = try listen()
        var st = stat()
        XCTAssertEqual(lstat(path, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertEqual(st.st_uid, geteuid())
        XCTAssertTrue(fd.isNonBlocking)
        XCTAssertTrue(fd.isCloseOnExec)
        XCTAssertEqual(ControlSocket.acceptAndReply(listener: fd, text: "x"), .nothingPending)
    }

    func testRoundTrip() throws {
        try XCTSkipIf(geteuid() != 0, "the listener answers root only")
        let fd = try listen()
        let text = "peer 198.51.100.2:3456\nrx-packets 12\n"
        let round = try statusRound(fd, text: text)
        XCTAssertEqual(round.served, .replied)
        XCTAssertTrue(round.clientSaid.hasPrefix("REPLY:" + text), round.clientSaid)
    }

    func testOtherUsersCannotConnect() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to run a client as another uid")
        let fd = try listen()
        let round = try statusRound(fd, text: "secret", asUID: 65534)
        XCTAssertEqual(round.served, .nothingPending, "mode 0600 keeps them out")
        XCTAssertEqual(round.clientSaid, "ERROR:cannot connect to \(path) (Permission denied); squtun status must run as root")
    }

    func testPeerCredentialsAreChecked() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to run a client as another uid")
        let fd = try listen()
        XCTAssertEqual(chmod(path, 0o666), 0)  // open the door: SO_PEERCRED must still refuse
        let round = try statusRound(fd, text: "secret", asUID: 65534)
        XCTAssertEqual(round.served, .refused(uid: 65534))
        XCTAssertFalse(round.clientSaid.contains("secret"))
        XCTAssertTrue(round.clientSaid.hasPrefix("ERROR:"), round.clientSaid)
    }

    func testNoDaemon() {
        XCTAssertThrowsError(try ControlSocket.connectAndRead(path: path, interface: "sqt0")) { error in
            XCTAssertEqual(error as? SystemError, .controlNoDaemon(interface: "sqt0", path: path, errno: Errno(ENOENT)))
            XCTAssertEqual("\(error)", "no squtun is running for sqt0 (\(path): No such file or directory)")
        }
    }

    func testStaleSocketFile() throws {
        let fd = try ControlSocket.listen(path: path)
        fd.close()  // a crashed daemon: the file stays, nobody listens
        XCTAssertThrowsError(try ControlSocket.connectAndRead(path: path, interface: "sqt0")) { error in
            XCTAssertEqual("\(error)", "no squtun is running for sqt0 (\(path): Connection refused)")
        }
        XCTAssertNoThrow(try listen(), "the stale file is replaced")
    }

    func testLiveSocketIsNotStolen() throws {
        _ = try listen()
        XCTAssertThrowsError(try listen()) { error in
            XCTAssertEqual(error as? SystemError, .controlInUse(path: path))
        }
    }

    /// A shared directory (the package's sticky, group-writable
    /// /run/squtun): another user's live socket or symlink at our path is
    /// a squatter, removed; ours is made in its place, root's, mode 0600.
    func testOtherUsersEntriesAreReplaced() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to own files as another uid")
        let squatter = try listen()
        listeners.removeAll()
        XCTAssertEqual(lchown(path, 65534, 65534), 0)
        let fd = try listen()
        squatter.close()
        var st = stat()
        XCTAssertEqual(lstat(path, &st), 0)
        XCTAssertEqual(st.st_uid, 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let round = try statusRound(fd, text: "ours\n")
        XCTAssertTrue(round.clientSaid.hasPrefix("REPLY:ours\n"), "the client reaches our listener, not the squatter's: \(round.clientSaid)")
        listeners.forEach { $0.close() }
        listeners = []
        ControlSocket.removeFile(path: path)

        let target = directory + "/target"
        XCTAssertEqual(symlink(target, path), 0)
        XCTAssertEqual(lchown(path, 65534, 65534), 0)
        _ = try listen()
        XCTAssertEqual(lstat(path, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertNotEqual(access(target, F_OK), 0, "nothing made through the link")
    }

    func testNonSocketIsLeftAlone() throws {
        XCTAssertNotEqual(creat(path, 0o644), -1)
        XCTAssertThrowsError(try listen()) { error in
            XCTAssertEqual(error as? SystemError, .controlNotSocket(path: path))
        }
        var st = stat()
        XCTAssertEqual(lstat(path, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFREG)
        unlink(path)
    }

    func testTimeout() throws {
        _ = try listen()  // never accepts
        let start = Date()
        XCTAssertThrowsError(try ControlSocket.connectAndRead(path: path, interface: "sqt0", timeoutMs: 300)) { error in
            XCTAssertEqual(error as? SystemError, .controlTimeout(interface: "sqt0", path: path))
        }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThanOrEqual(elapsed, 0.29)
        XCTAssertLessThan(elapsed, 2)
    }

    func testPathTooLong() {
        let long = "/tmp/" + String(repeating: "x", count: 120)
        XCTAssertThrowsError(try ControlSocket.listen(path: long)) { error in
            XCTAssertEqual(error as? SystemError, .controlPathTooLong(path: long))
        }
    }
}
