import XCTest
import Shared
import CShim
@testable import SqutunSystem
#if canImport(Glibc)
import Glibc
#endif

/// The server's hook runner with real programs: /usr/bin/env and
/// executable #!/bin/sh scripts in a temporary directory.
final class HookTests: XCTestCase {
    private var directory = ""
    private var strays: [pid_t] = []

    override func setUp() {
        super.setUp()
        directory = TestSupport.makeTemporaryDirectory()
    }

    override func tearDown() {
        strays.forEach { _ = kill($0, SIGKILL) }
        strays = []
        TestSupport.removeTree(directory)
        super.tearDown()
    }

    static let path = (name: "PATH", value: "/usr/sbin:/usr/bin:/sbin:/bin")

    /// An executable script `name` in the test's directory.
    private func script(_ name: String, _ body: String) -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertNoThrow(try FileDescriptor(rawValue: fd).writeAll("#!/bin/sh\n" + body + "\n"))
        close(fd)
        return path
    }

    private func run(_ program: String, _ arguments: [String] = [], environment: [(name: String, value: String)] = [path],
                     timeoutMs: Int = 5000) -> (result: HookResult, lines: [String], ms: UInt64) {
        var lines: [String] = []
        let start = MonotonicClock.nowMs()
        let result = Hook.run(program: program, arguments: arguments, environment: environment, timeoutMs: timeoutMs) {
            lines.append($0)
        }
        return (result, lines, MonotonicClock.nowMs() - start)
    }

    private func readFile(_ path: String) -> String {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return "" }
        defer { fd.close() }
        return TestSupport.readAll(fd)
    }

    /// The environment is exactly the pairs given, in order: nothing of the
    /// test process's (HOME, SQUTUN_*, ...) leaks in.
    func testEnvironmentIsExactlyTheGivenPairs() {
        setenv("SQUTUN_HOOK_TEST_LEAK", "must not be seen", 1)
        defer { unsetenv("SQUTUN_HOOK_TEST_LEAK") }
        let environment: [(name: String, value: String)] = [Self.path, ("TUN_DEV_NAME", "sqc0"), ("TUN_CLIENT_ID", "alice"),
                           ("TUN_CLIENT_ADDRESS", "198.51.100.7"), ("TUN_CLIENT_PORT", "40000"), ("TUN_EVENT", "up"),
                           ("EMPTY", ""), ("SPACES", "a b  c")]
        let run = run("/usr/bin/env", environment: environment)
        XCTAssertEqual(run.result, .exited(0))
        XCTAssertEqual(run.lines, environment.map { "\($0.name)=\($0.value)" })
        // And the arguments, each one word, no shell in between.
        let echoed = self.run("/usr/bin/printf", ["%s|\\n", "a b", "$HOME", "*", "; rm -rf /"])
        XCTAssertEqual(echoed.result, .exited(0))
        XCTAssertEqual(echoed.lines, ["a b|", "$HOME|", "*|", "; rm -rf /|"])
    }

    func testOutputIsLoggedCappedCutAndMadePrintable() {
        let hook = script("chatty", """
        echo "first on stdout"
        echo "then on stderr" >&2
        printf 'bell\\007 escape\\033[2J end\\n'
        printf '%0300d\\n' 0
        echo
        i=0; while [ $i -lt 30 ]; do echo "line $i"; i=$((i+1)); done
        printf 'no newline at the end'
        """)
        let run = run(hook)
        XCTAssertEqual(run.result, .exited(0))
        XCTAssertEqual(run.lines.count, Hook.maxLoggedLines + 1, "\(run.lines)")
        XCTAssertEqual(run.lines[0], "first on stdout")
        XCTAssertEqual(run.lines[1], "then on stderr")
        XCTAssertEqual(run.lines[2], "bell\\x07 escape\\x1b[2J end")
        XCTAssertEqual(run.lines[3], String(repeating: "0", count: Hook.maxLineBytes) + "...")
        XCTAssertEqual(run.lines[4], "line 0", "the empty line is skipped")
        XCTAssertEqual(run.lines[19], "line 15")
        // 30 - 16 = 14 "line" lines and the unterminated last one.
        XCTAssertEqual(run.lines[20], "... 15 more lines")
    }

    func testExitStatusAndSignal() {
        XCTAssertEqual(run(script("fails", "echo refusing; exit 3")).result, .exited(3))
        XCTAssertEqual(run(script("ok", "exit 0")).result, .exited(0))
        XCTAssertTrue(run(script("ok2", "true")).result.succeeded)
        let killed = run(script("killed", "kill -TERM $$; sleep 5"))
        XCTAssertEqual(killed.result, .signaled(SIGTERM))
        XCTAssertFalse(killed.result.succeeded)
    }

    /// A hook that does not end is killed at the deadline, with everything
    /// it started (its process group), and reaped.
    func testTimeoutKillsTheHookAndItsChildren() {
        let pidFile = directory + "/pid"
        let hook = script("sleeps", "echo $$ > \(pidFile); echo started; sleep 30 & sleep 30")
        let run = run(hook, timeoutMs: 700)
        XCTAssertEqual(run.result, .timedOut)
        XCTAssertGreaterThanOrEqual(run.ms, 700)
        XCTAssertLessThan(run.ms, 1700, "the run must end within its timeout + 1 s")
        XCTAssertEqual(run.lines, ["started"])
        let pid = pid_t(readFile(pidFile).split(separator: "\n").first.map(String.init) ?? "") ?? 0
        XCTAssertGreaterThan(pid, 0)
        // Reaped: not our child any more (no zombie).
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, WNOHANG), -1)
        XCTAssertEqual(errno, ECHILD)
        // Nothing of its group lives on (the killed background sleep may
        // stay a zombie until init reaps it: that is not running).
        var survivors = liveMembers(ofGroup: pid)
        for _ in 0..<100 where !survivors.isEmpty {
            usleep(10_000)
            survivors = liveMembers(ofGroup: pid)
        }
        XCTAssertEqual(survivors, [], "processes of the hook's group survived")
    }

    /// Signals arriving all the time (the helper handles SIGCHLD, SIGHUP,
    /// ...) interrupt the wait, and do not stretch it past the deadline.
    func testSignalsDoNotStretchTheTimeout() {
        XCTAssertEqual([SIGALRM].withUnsafeBufferPointer { squtun_signals_install($0.baseAddress, 1, -1) }, 0)
        var every20ms = itimerval(it_interval: timeval(tv_sec: 0, tv_usec: 20_000), it_value: timeval(tv_sec: 0, tv_usec: 20_000))
        XCTAssertEqual(setitimer(Int32(ITIMER_REAL.rawValue), &every20ms, nil), 0)
        let run = run(script("sleeps", "sleep 30"), timeoutMs: 500)
        var off = itimerval()
        XCTAssertEqual(setitimer(Int32(ITIMER_REAL.rawValue), &off, nil), 0)
        signal(SIGALRM, SIG_DFL)
        _ = squtun_take_signals()
        XCTAssertEqual(run.result, .timedOut)
        XCTAssertLessThan(run.ms, 1500)
    }

    /// A helper started with stdin and stdout closed: the hook's pipe gets
    /// fds 0 and 1, and the hook still has its output on 1 and 2.
    func testAHelperWithoutStdioStillGivesTheHookItsOutput() {
        let result = ChildProcess.run("hook-stdio-closed")
        XCTAssertEqual(result.status, .exited(0), result.output)
        XCTAssertTrue(result.output.contains("hook said: [out, err]"), result.output)
    }

    /// Processes in process group `group` that are not zombies, from /proc/N/stat.
    private func liveMembers(ofGroup group: pid_t) -> [pid_t] {
        guard let dir = opendir("/proc") else { return [-1] }
        defer { closedir(dir) }
        var found: [pid_t] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name) else { continue }
            // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the last ')'.
            let stat = readFile("/proc/\(pid)/stat")
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, pid_t(fields[2]) == group, fields[0] != "Z" { found.append(pid) }
        }
        return found
    }

    /// A background child that keeps the pipe open (or writes forever)
    /// does not hold the run past the hook's exit.
    func testBackgroundChildrenHoldingThePipeDoNotHoldTheRun() {
        let pidFile = directory + "/bg"
        let quiet = run(script("detaches", "sleep 30 & echo $! > \(pidFile); echo done"), timeoutMs: 10_000)
        if let pid = pid_t(readFile(pidFile).split(separator: "\n").first.map(String.init) ?? "") { strays.append(pid) }
        XCTAssertEqual(quiet.result, .exited(0))
        XCTAssertEqual(quiet.lines, ["done"])
        XCTAssertLessThan(quiet.ms, 3000)
        XCTAssertEqual(strays.count, 1)
        XCTAssertEqual(kill(strays[0], 0), 0, "the background child still runs: the run did not wait for it")

        let noisy = run(script("floods", "yes & echo $! > \(pidFile); exit 0"), timeoutMs: 10_000)
        if let pid = pid_t(readFile(pidFile).split(separator: "\n").first.map(String.init) ?? "") { strays.append(pid) }
        XCTAssertEqual(noisy.result, .exited(0))
        XCTAssertLessThan(noisy.ms, 3000)
        XCTAssertLessThanOrEqual(noisy.lines.count, Hook.maxLoggedLines + 1)
    }

    /// The hook inherits stdin /dev/null, the pipe on 1 and 2, and no other
    /// fd: not even ones this process left without close-on-exec.
    func testNoDescriptorLeaksIntoTheHook() throws {
        let inheritable = open("/dev/zero", O_RDONLY)  // no O_CLOEXEC, on purpose
        XCTAssertGreaterThan(inheritable, 2)
        defer { close(inheritable) }
        let socket = try UDPSocket.open(port: 0, bindAddress: "127.0.0.1")
        // ls itself opens one fd: the directory it lists.
        let run = run("/bin/ls", ["-l", "/proc/self/fd"])
        XCTAssertEqual(run.result, .exited(0))
        var seen: [Int32: String] = [:]
        for line in run.lines {
            // "lr-x------ 1 root root 64 Nov 30 13:04 0 -> /dev/null"
            guard let arrow = line.range(of: " -> ") else { continue }
            let number = line[..<arrow.lowerBound].split(separator: " ").last.flatMap { Int32($0) }
            if let number { seen[number] = String(line[arrow.upperBound...]) }
        }
        XCTAssertEqual(seen[0], "/dev/null", "\(run.lines)")
        XCTAssertTrue(seen[1]?.hasPrefix("pipe:") == true, "\(run.lines)")
        XCTAssertEqual(seen[1], seen[2], "stdout and stderr are one pipe")
        let others = seen.filter { $0.key > 2 }
        XCTAssertEqual(others.count, 1, "\(run.lines)")
        XCTAssertTrue(others.first?.value.hasSuffix("/fd") == true, "only ls's own directory fd: \(run.lines)")
        _ = socket
    }

    func testWhatCannotStart() {
        let missing = run(directory + "/no-such-hook")
        XCTAssertEqual(missing.result, .spawnFailed(Errno(ENOENT)))
        XCTAssertTrue(missing.lines.isEmpty)
        XCTAssertFalse(missing.result.succeeded)
        XCTAssertEqual(missing.result.description, "could not be started (No such file or directory)")

        let notExecutable = script("plain", "exit 0")
        XCTAssertEqual(chmod(notExecutable, 0o644), 0)
        XCTAssertEqual(run(notExecutable).result, .spawnFailed(Errno(EACCES)))

        // An environment name with '=' or a NUL byte anywhere would change
        // what the hook is told: refused before anything runs.
        XCTAssertEqual(run("/usr/bin/env", environment: [("A=B", "c")]).result, .spawnFailed(Errno(EINVAL)))
        XCTAssertEqual(run("/usr/bin/env", environment: [("", "c")]).result, .spawnFailed(Errno(EINVAL)))
        XCTAssertEqual(run("/usr/bin/env", environment: [("A", "b\u{0}c")]).result, .spawnFailed(Errno(EINVAL)))
        XCTAssertEqual(run("/usr/bin/printf", ["x\u{0}y"]).result, .spawnFailed(Errno(EINVAL)))
    }

    /// The packaged example hook (etc/squtun/server-hook.example), run as
    /// the helper runs it, on a real client tun: "up" gives the device the
    /// server's end of the client's /30 and routes the client's networks;
    /// a client without a line in the table is refused.
    func testTheExampleServerHookConfiguresAClientTun() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to create a tun device")
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("etc/squtun/server-hook.example").path
        let table = directory + "/clients"
        let fd = open(table, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        XCTAssertNoThrow(try FileDescriptor(rawValue: fd).writeAll("""
            # identifier  number  networks
            alice   16001
            bob     16002   192.0.2.64/26   # bob's LAN

            """))
        close(fd)
        let made = try ClientTun.create(pattern: TestSupport.uniqueName("sqh") + "n%d", uid: 65534, gid: 65534, mtu: 1400)
        defer { made.fd.close() }
        func event(_ id: String, _ event: String) -> (result: HookResult, lines: [String], ms: UInt64) {
            run(example, [table], environment: [Self.path, ("TUN_DEV_NAME", made.name), ("TUN_CLIENT_ID", id),
                                                 ("TUN_CLIENT_ADDRESS", "198.51.100.9"), ("TUN_CLIENT_PORT", "40001"),
                                                 ("TUN_EVENT", event)])
        }
        let up = event("bob", "up")
        XCTAssertEqual(up.result, .exited(0), "\(up.lines)")
        XCTAssertEqual(up.lines, ["bob (198.51.100.9 port 40001) on \(made.name): 10.99.250.9 <-> 10.99.250.10, routes 192.0.2.64/26"])
        let addresses = TestSupport.ip("-o", "-4", "addr", "show", "dev", made.name).output
        XCTAssertTrue(addresses.contains("inet 10.99.250.9/30"), addresses)
        let routes = TestSupport.ip("-4", "route", "show", "dev", made.name).output
        XCTAssertTrue(routes.contains("192.0.2.64/26 via 10.99.250.10"), routes)

        let down = event("bob", "down")
        XCTAssertEqual(down.result, .exited(0), "\(down.lines)")
        XCTAssertEqual(down.lines, ["bob left \(made.name) (10.99.250.10)"])
        let stranger = event("carol", "up")
        XCTAssertEqual(stranger.result, .exited(1))
        XCTAssertEqual(stranger.lines, ["carol has no line in \(table)"])
        XCTAssertEqual(event("../x", "up").result, .exited(1))
    }
}

extension ChildScenarios {
    static func hookWithStdioClosed() throws {
        close(0)
        close(1)
        // What the hook's pipe will be: the two lowest free numbers.
        let probe = try FileDescriptor.makePipe()
        try check(probe.read.rawValue == 0 && probe.write.rawValue == 1, "pipe is \(probe)")
        probe.read.close()
        probe.write.close()
        var lines: [String] = []
        let result = Hook.run(program: "/bin/sh", arguments: ["-c", "echo out; echo err >&2"],
                              environment: [HookTests.path], timeoutMs: 5000) { lines.append($0) }
        try check(result == .exited(0), "hook \(result): \(lines)")
        say("hook said: [\(lines.joined(separator: ", "))]")
    }
}
