import XCTest
import CSeccomp
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// The filter is loaded only in spawned children (ChildEntry), never here.
final class SeccompTests: XCTestCase {
    private var directories: [String] = []
    private var devices: [String] = []

    override func tearDown() {
        directories.forEach { TestSupport.removeTree($0) }
        directories = []
        for name in devices {
            TestSupport.ip("link", "del", name)
            XCTAssertFalse(TestSupport.interfaceExists(name))
        }
        devices = []
        super.tearDown()
    }

    func testAllowListIsWellFormed() {
        for mode in [Seccomp.Mode.worker, .singleProcess] {
            let rules = Seccomp.allowList(mode: mode)
            XCTAssertEqual(Set(rules.map(\.syscall)).count, rules.count, "duplicate entries")
            for rule in rules {
                XCTAssertFalse(rule.why.isEmpty, rule.syscall)
            }
        }
        let worker = Set(Seccomp.allowList().map(\.syscall))
        for forbidden in ["open", "openat", "socket", "connect", "execve", "execveat", "ptrace", "kill", "ioctl",
                          "setuid", "mprotect", "unlink", "fork", "clone", "bind", "chmod", "prctl"] {
            XCTAssertFalse(worker.contains(forbidden), forbidden)
        }
        #if arch(x86_64)
        // Every name exists on this architecture (a typo would silently allow nothing).
        for rule in Seccomp.allowList(mode: .singleProcess) {
            XCTAssertNotEqual(seccomp_syscall_resolve_name(rule.syscall), __NR_SCMP_ERROR, rule.syscall)
        }
        #endif
        XCTAssertEqual(Seccomp.defaultAction, SCMP_ACT_KILL_PROCESS)
        // The single process with tun offloads: one ioctl, fully pinned down.
        XCTAssertFalse(Seccomp.allowList(mode: .singleProcess).contains { $0.syscall == "ioctl" })
        let ioctlRule = Seccomp.allowList(mode: .singleProcess, tunFD: 7).filter { $0.syscall == "ioctl" }
        XCTAssertEqual(ioctlRule.count, 1)
        XCTAssertEqual(ioctlRule.first?.conditions.map(\.a), [7, UInt64(Tun.TUNSETOFFLOAD), 0])
        XCTAssertFalse(Seccomp.allowList(mode: .worker, tunFD: 7).contains { $0.syscall == "ioctl" })
        // A server's worker: exactly the worker's list and connect (its
        // clients' own sockets follow them), which nothing else gets.
        let server = Seccomp.allowList(mode: .serverWorker).map(\.syscall)
        XCTAssertEqual(Set(server).subtracting(worker), ["connect"])
        XCTAssertEqual(server.count, worker.count + 1)
    }

    func testFilterBuilds() throws {
        let filter = try Seccomp.makeFilter(rules: Seccomp.allowList())
        var value: UInt32 = 0
        XCTAssertEqual(seccomp_attr_get(filter, SCMP_FLTATR_CTL_TSYNC, &value), 0)
        XCTAssertEqual(value, 1, "the worker's filter covers all threads")
        XCTAssertEqual(seccomp_attr_get(filter, SCMP_FLTATR_ACT_BADARCH, &value), 0)
        XCTAssertEqual(value, SCMP_ACT_KILL_PROCESS)
        XCTAssertEqual(seccomp_attr_get(filter, SCMP_FLTATR_ACT_DEFAULT, &value), 0)
        XCTAssertEqual(value, SCMP_ACT_KILL_PROCESS)
        seccomp_release(filter)
        XCTAssertThrowsError(try Seccomp.makeFilter(rules: [.init(syscall: "mmap", why: "x", conditions: [.equal(9, 0)])]))
    }

    /// What any code in the worker does (runtime, malloc, stdio, clocks,
    /// signals) under the real filter, after a real privilege drop into an
    /// empty chroot. The worker's own start and its data path under the
    /// filter: WorkerProcessTests, with the real worker.
    func testRuntimeRunsUnderTheFilterAfterTheDrop() throws {
        try XCTSkipIf(geteuid() != 0, "needs root for the drop")
        let chroot = TestSupport.makeTemporaryDirectory()
        directories.append(chroot)
        XCTAssertEqual(chmod(chroot, 0o755), 0)
        let result = ChildProcess.run("runtime-under-filter", environment: ["SQUTUN_TEST_CHROOT=\(chroot)"])
        XCTAssertEqual(result.status, .exited(0), result.output)
        XCTAssertTrue(result.output.contains("filter installed"), result.output)
        XCTAssertTrue(result.output.contains("stdout works: 7"), result.output)
        XCTAssertTrue(result.output.contains("workload done"), result.output)
    }

    /// Same without a drop (the single-process mode's situation).
    func testRuntimeRunsUnderTheFilterWithoutDrop() throws {
        let result = ChildProcess.run("runtime-under-filter")
        XCTAssertEqual(result.status, .exited(0), result.output)
        XCTAssertTrue(result.output.contains("workload done"), result.output)
    }

    func testSingleProcessModeCanCleanUpAndLog() throws {
        let run = TestSupport.makeTemporaryDirectory()
        directories.append(run)
        let result = ChildProcess.run("single-process-exit", environment: ["SQUTUN_TEST_RUN=\(run)"])
        XCTAssertEqual(result.status, .exited(0), result.output)
        XCTAssertTrue(result.output.contains("cleaned up"), result.output)
        var st = stat()
        XCTAssertEqual(stat(run + "/p.pid", &st), 0)
        XCTAssertEqual(st.st_size, 0, "the pid file is emptied")
    }

    /// The single process's filter: no new socket, no connect (the user's
    /// D-Bus, systemd user manager, ssh-agent, X11), no unlink, and
    /// ftruncate only on the pid file's fd.
    func testSingleProcessFilterForbidsSocketsConnectAndUnlink() throws {
        let run = TestSupport.makeTemporaryDirectory()
        directories.append(run)
        let victim = run + "/victim"
        let made = open(victim, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(made, 0)
        close(made)
        let names = Set(Seccomp.allowList(mode: .singleProcess, pidFileFD: 9).map(\.syscall))
        for call in ["socket", "connect", "unlink", "unlinkat", "rename", "open", "openat", "bind", "pread64"] {
            XCTAssertFalse(names.contains(call), call)
        }
        let truncate = Seccomp.allowList(mode: .singleProcess, pidFileFD: 9).filter { $0.syscall == "ftruncate" }
        XCTAssertEqual(truncate.first?.conditions.map(\.a), [9, 0])
        for call in ["socket-unix", "connect", "unlink", "ftruncate"] {
            let result = ChildProcess.run("forbidden-single-\(call)", environment: ["SQUTUN_TEST_RUN=\(run)"])
            XCTAssertEqual(result.status, .signaled(SIGSYS), "\(call): \(result.output)")
            XCTAssertTrue(result.output.contains("filter installed; calling \(call)"), "\(call): \(result.output)")
        }
        XCTAssertEqual(access(victim, F_OK), 0, "the file is still there")
    }

    /// abort() and Swift traps must die by their own signal (SIGABRT,
    /// SIGILL/SIGTRAP), so the helper reports a crash, not a filter kill.
    func testCrashesKeepTheirSignal() {
        let aborted = ChildProcess.run("abort")
        XCTAssertEqual(aborted.status, .signaled(SIGABRT), aborted.output)
        let trapped = ChildProcess.run("fatal-error")
        XCTAssertTrue([.signaled(SIGILL), .signaled(SIGTRAP)].contains(trapped.status), "\(String(describing: trapped.status)) \(trapped.output)")
        XCTAssertTrue(trapped.output.contains("filter installed"), trapped.output)
        XCTAssertTrue(trapped.output.contains("Index out of range"), trapped.output)
    }

    /// A stopped and continued worker (Ctrl-Z, fg) resumes its poll through
    /// restart_syscall.
    func testStopAndContinue() throws {
        let pipe = try FileDescriptor.makePipe()
        let pid = try Spawn.spawn(path: "/proc/self/exe", arguments: ["child", "DaemonTests.ChildEntry/testChildEntry"],
                                  environment: ["\(ChildProcess.scenarioVariable)=stop-cont"] + Spawn.workerEnvironment,
                                  fileMap: [(pipe.write, 1), (pipe.write, 2)])
        pipe.write.close()
        // Wait for the child to be under the filter and inside poll.
        var seen = ""
        while !seen.contains("filter installed") {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { Glibc.read(pipe.read.rawValue, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            seen += String(decoding: chunk[0..<n], as: UTF8.self)
        }
        usleep(300_000)
        XCTAssertEqual(kill(pid, SIGSTOP), 0)
        usleep(200_000)
        XCTAssertEqual(kill(pid, SIGCONT), 0)
        let output = seen + TestSupport.readAll(pipe.read)
        pipe.read.close()
        XCTAssertEqual(try Spawn.wait(pid), .exited(0), output)
        XCTAssertTrue(output.contains("resumed"), output)
    }

    /// The server loop's epoll calls are in the worker's list, and work
    /// under the real filter (the whole sequence, in a filtered child).
    func testEpollWorksUnderTheWorkerFilter() {
        let worker = Set(Seccomp.allowList().map(\.syscall))
        for call in ["epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait"] {
            XCTAssertTrue(worker.contains(call), call)
        }
        XCTAssertFalse(worker.contains("epoll_create"), "only epoll_create1 (close-on-exec)")
        let result = ChildProcess.run("epoll-under-filter")
        XCTAssertEqual(result.status, .exited(0), result.output)
        XCTAssertTrue(result.output.contains("filter installed"), result.output)
        XCTAssertTrue(result.output.contains("epoll works"), result.output)
    }

    func testForbiddenCallsKillTheProcess() {
        for call in ["socket", "openat", "execve", "mmap-exec", "kill", "setuid", "ioctl"] {
            let result = ChildProcess.run("forbidden-\(call)")
            XCTAssertEqual(result.status, .signaled(SIGSYS), "\(call): \(result.output)")
            XCTAssertTrue(result.output.contains("filter installed; calling \(call)"), "\(call): \(result.output)")
            XCTAssertFalse(result.output.contains("instead of killing"), result.output)
        }
    }
}
