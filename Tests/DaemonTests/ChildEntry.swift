import XCTest
import CShim
import Shared
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// The entry point of spawned test children (see `ChildProcess`). In a
/// normal test run it is skipped. In a child it runs the scenario named by
/// SQUTUN_TEST_CHILD and ends the process with _exit: 0 = every check
/// passed, 1 = a check failed (the reason is on stderr). XCTest never gets
/// control back, so nothing of it runs after a chroot or under seccomp.
/// Filters are loaded without TSYNC here: the runner's idle Dispatch
/// threads (which the worker does not have) must not trip the filter; the
/// thread that runs the scenario is filtered exactly as the worker is.
final class ChildEntry: XCTestCase {
    func testChildEntry() throws {
        guard let raw = getenv(ChildProcess.scenarioVariable) else {
            throw XCTSkip("runs only inside a spawned test child")
        }
        let scenario = String(cString: raw)
        do {
            try ChildScenarios.run(scenario)
            fflush(nil)
            _exit(0)
        } catch {
            ChildScenarios.say("FAILED: \(error)")
            _exit(1)
        }
    }
}

struct ChildCheckFailed: Error, CustomStringConvertible {
    let description: String
}

enum ChildScenarios {
    static func say(_ text: String) {
        let line = text + "\n"
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    }

    static func check(_ condition: Bool, _ what: @autoclosure () -> String) throws {
        if !condition { throw ChildCheckFailed(description: what()) }
    }

    static func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    static func run(_ scenario: String) throws {
        switch scenario {
        case "spawn-contract": try spawnContract()
        case "drop": try drop()
        case "runtime-under-filter": try runtimeUnderFilter()
        case "status-client": try statusClient()
        case "single-process-exit": try singleProcessExit()
        case "abort": try crash(abort: true)
        case "fatal-error": try crash(abort: false)
        case "stop-cont": try stopContinue()
        case "epoll-under-filter": try epollUnderFilter()
        case "hook-stdio-closed": try hookWithStdioClosed()
        case let s where s.hasPrefix("forbidden-single-"):
            try forbidden(String(s.dropFirst("forbidden-single-".count)), mode: .singleProcess)
        case let s where s.hasPrefix("forbidden-"): try forbidden(String(s.dropFirst("forbidden-".count)))
        default: throw ChildCheckFailed(description: "unknown scenario \(scenario)")
        }
    }

    // MARK: Spawn

    /// What Spawn promises the worker: the channel on fd 3, only the given
    /// environment, an empty signal mask, default dispositions.
    static func spawnContract() throws {
        let channel = Channel(adopting: Channel.workerFD)
        try check(channel.fd.isOpen, "fd 3 is not open")
        var type: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        try check(getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == Int32(SOCK_SEQPACKET.rawValue),
                  "fd 3 is not a SOCK_SEQPACKET socket")
        var names: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            names.append(String(cString: pointer))
            entry += 1
        }
        let expected = Set(["\(ChildProcess.scenarioVariable)=spawn-contract"] + Spawn.workerEnvironment)
        try check(Set(names) == expected, "environment is \(names)")
        var mask = sigset_t()
        sigemptyset(&mask)
        try check(pthread_sigmask(SIG_SETMASK, nil, &mask) == 0, "sigprocmask failed")
        try check(sigismember(&mask, SIGUSR2) == 0, "SIGUSR2 is still blocked")
        var action = sigaction()
        try check(sigaction(SIGPIPE, nil, &action) == 0, "sigaction failed")
        try check(action.__sigaction_handler.sa_handler == nil, "SIGPIPE disposition was inherited (not SIG_DFL)")
        // Round trip over the inherited channel: the parent sends a config,
        // we answer with a log line naming its interface.
        guard case let .config(config) = try channel.receive(from: .helper) else {
            throw ChildCheckFailed(description: "expected a config message")
        }
        try channel.send(.log(level: .info, text: "interface=\(config.interface)"))
    }

    // MARK: Privilege drop

    static func drop() throws {
        guard let dir = env("SQUTUN_TEST_CHROOT") else { throw ChildCheckFailed(description: "no chroot dir") }
        try Privileges.checkChrootDirectory(dir)
        try Privileges.dropPrivileges(chroot: dir, uid: 65534, gid: 65534)
        try check(getuid() == 65534 && geteuid() == 65534 && getgid() == 65534, "ids not changed")
        try check(access("/etc/passwd", F_OK) != 0, "/etc/passwd is visible: not chrooted")
        var cwd = [CChar](repeating: 0, count: 256)
        try check(getcwd(&cwd, cwd.count) != nil && String(cString: cwd) == "/", "cwd is not /")
        try check(squtun_get_no_new_privs() == 1, "no_new_privs not set")
        // Verification passes again, and a root target is refused.
        try Privileges.verifyDropped(uid: 65534, gid: 65534)
        do {
            try Privileges.verifyDropped(uid: 65533, gid: 65534)
            throw ChildCheckFailed(description: "verifyDropped accepted wrong uid")
        } catch let error as SystemError {
            guard case .dropNotVerified = error else { throw error }
        }
    }

    // MARK: What any code in the worker does, under the real filter

    /// The Swift runtime, malloc, stdio, clocks, randomness and signal
    /// delivery under the worker's filter (after a drop when root and a
    /// chroot is given). The worker's own steps and its data path are run
    /// by the real worker (WorkerProcessTests), not copied here.
    static func runtimeUnderFilter() throws {
        let wake = try FileDescriptor.makePipe(nonBlocking: true)
        // A stdio stream first written after the filter: its buffer set-up fstats.
        let streamPipe = try FileDescriptor.makePipe()
        guard let stream = fdopen(streamPipe.write.rawValue, "w") else { throw ChildCheckFailed(description: "fdopen") }
        let handled: [Int32] = [SIGALRM, SIGTERM]
        try check(handled.withUnsafeBufferPointer { squtun_signals_install($0.baseAddress, 2, wake.write.rawValue) } == 0,
                  "signal install failed")
        // A timer that fires after the filter is in: signal delivery and
        // rt_sigreturn happen under seccomp.
        var timer = itimerval(it_interval: timeval(), it_value: timeval(tv_sec: 0, tv_usec: 200_000))
        try check(setitimer(Int32(ITIMER_REAL.rawValue), &timer, nil) == 0, "setitimer failed")

        if let dir = env("SQUTUN_TEST_CHROOT") {
            try Privileges.dropPrivileges(chroot: dir, uid: 65534, gid: 65534)
        } else {
            try Privileges.setNoNewPrivileges()
        }
        try Seccomp.install(allThreads: false)
        say("filter installed")

        // Swift runtime and malloc: small, large (mmap) and growing blocks.
        var big = [UInt8](repeating: 7, count: 4 << 20)
        big[big.count - 1] = 9
        var table: [String: Int] = [:]
        for i in 0..<2000 { table["key \(i)"] = i }
        var grown: [Int] = []
        for i in 0..<300_000 { grown.append(i) }
        try check(big.reduce(0, { $0 &+ Int($1) }) > 0 && table.count == 2000 && grown.count == 300_000, "memory")
        big = []
        grown.removeAll(keepingCapacity: false)
        // realloc of an mmapped block: mremap.
        // (40 MiB: above glibc's largest dynamic mmap threshold, 32 MiB.)
        var block = malloc(40 << 20)
        block = realloc(block, 48 << 20)
        try check(block != nil, "realloc")
        block!.storeBytes(of: 1, toByteOffset: (48 << 20) - 1, as: UInt8.self)
        free(block)
        try check(fputs("buffered\n", stream) >= 0 && fflush(stream) == 0, "stdio stream")
        try check(TestSupport.readLine(streamPipe.read) == "buffered", "stdio stream text")
        print("stdout works: \(table["key 7"] ?? -1)")
        fflush(nil)

        // Clocks, randomness.
        let t0 = WallClock.nowMs()
        var ts = timespec()
        try check(clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && t0 > 0, "clock")
        var random = [UInt8](repeating: 0, count: 32)
        try check(squtun_getrandom(&random, 32) == 0 && random.contains { $0 != 0 }, "getrandom")
        _ = Int.random(in: 0..<1000)

        // Wait for the timer's signal through the wake pipe.
        try check(waitReadable(wake.read, 3000), "no signal arrived")
        var byte = [UInt8](repeating: 0, count: 16)
        _ = try byte.withUnsafeMutableBytes { try wake.read.read(into: $0) }
        try check(squtun_take_signals() & (1 << UInt64(SIGALRM)) != 0, "SIGALRM not recorded")
        try check(squtun_take_signals() == 0, "signals not cleared")

        for fd in [wake.read, wake.write] { fd.close() }
        say("workload done")
    }

    // MARK: Status client

    /// `squtun status` as a separate process, optionally as another uid.
    /// Prints REPLY:<text> or ERROR:<message>.
    static func statusClient() throws {
        guard let path = env("SQUTUN_TEST_CONTROL") else { throw ChildCheckFailed(description: "no control path") }
        if let uid = env("SQUTUN_TEST_AS_UID").flatMap(UInt32.init) {
            try check(setgroups(0, nil) == 0 && squtun_setresgid(uid, uid, uid) == 0 && squtun_setresuid(uid, uid, uid) == 0,
                      "cannot become uid \(uid)")
        }
        do {
            let text = try ControlSocket.connectAndRead(path: path, interface: "sqt0")
            print("REPLY:\(text)", terminator: "")
        } catch {
            print("ERROR:\(error)", terminator: "")
        }
    }

    // MARK: Single-process mode

    /// The unprivileged single process under its filter: logs to syslog
    /// through the socket opened before, and at exit empties its pid file
    /// through the fd it holds (no unlink in its filter).
    static func singleProcessExit() throws {
        guard let dir = env("SQUTUN_TEST_RUN") else { throw ChildCheckFailed(description: "no run dir") }
        let pidFile = try PidFile.acquire(path: dir + "/p.pid", interface: "sqt0")
        let control = try ControlSocket.listen(path: dir + "/c.sock")
        Log.useSyslog(ident: "squtun-test")
        Log.notice("before the filter")
        Log.forDataPath(ident: "squtun-test")
        try Privileges.setNoNewPrivileges()
        try Seccomp.install(mode: .singleProcess, pidFileFD: pidFile.descriptor.rawValue, allThreads: false)
        say("filter installed")
        // More lines than the rate limit lets through: the rest are counted.
        for i in 0..<150 { Log.notice("under the filter \(i)") }
        try check(Log.droppedLines >= 50, "\(Log.droppedLines) lines dropped, expected the rate limit to drop 50")
        control.close()
        pidFile.vacate()
        var st = stat()  // (access(2) is not allowed; stat is newfstatat)
        try check(stat(dir + "/p.pid", &st) == 0 && st.st_size == 0, "pid file not emptied")
        say("cleaned up")
    }

    // MARK: Crashes must look like crashes, not like seccomp kills

    static func crash(abort useAbort: Bool) throws {
        try Privileges.setNoNewPrivileges()
        try Seccomp.install(allThreads: false)
        say("filter installed")
        if useAbort { abort() }
        let values = env("SQUTUN_TEST_NEVER").map { [$0] } ?? []
        _ = values[0]  // an out-of-range index: a Swift runtime trap
    }

    /// poll is restarted with restart_syscall after SIGSTOP/SIGCONT.
    static func stopContinue() throws {
        try Privileges.setNoNewPrivileges()
        try Seccomp.install(allThreads: false)
        say("filter installed")
        _ = poll(nil, 0, 1500)
        say("resumed")
    }

    // MARK: Forbidden calls

    static func forbidden(_ call: String, mode: Seccomp.Mode = .worker) throws {
        // Made before the filter, as a compromised process would find them.
        let unixSocket = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let victim = env("SQUTUN_TEST_RUN").map { $0 + "/victim" } ?? "/nonexistent/victim"
        try Privileges.setNoNewPrivileges()
        try Seccomp.install(mode: mode, allThreads: false)
        say("filter installed; calling \(call)")
        switch call {
        case "socket-unix": _ = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        case "connect":
            // The user's session bus, ssh-agent, X11 … : any Unix socket.
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { dst in
                for (i, byte) in (env("SQUTUN_TEST_RUN") ?? "/").utf8.enumerated() { dst[i] = byte }
            }
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(unixSocket, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        case "unlink": _ = unlink(victim)
        case "ftruncate": _ = ftruncate(0, 0)
        case "socket": _ = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        case "openat": _ = open("/etc/hostname", O_RDONLY)
        case "execve": _ = execve("/bin/true", [strdup("true"), nil], [nil])
        case "mmap-exec": _ = mmap(nil, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        case "kill": _ = kill(getppid(), 0)
        case "setuid": _ = setuid(0)
        case "ioctl": _ = ioctl(0, UInt(TIOCGWINSZ), 0)
        default: throw ChildCheckFailed(description: "unknown call \(call)")
        }
        say("ERROR: \(call) returned (errno \(errno)) instead of killing the process")
        _exit(3)
    }

    // MARK: Helpers

    static func waitReadable(_ fd: FileDescriptor, _ ms: Int32) -> Bool {
        var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&p, 1, ms)
            if r < 0 && errno == EINTR { continue }
            return r == 1
        }
    }

    static func connectUnix(_ path: String) throws -> FileDescriptor {
        let raw = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { dst in
            for (i, byte) in path.utf8.enumerated() { dst[i] = byte }
        }
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try check(r == 0, "connect \(path): errno \(errno)")
        return FileDescriptor(rawValue: raw)
    }
}
