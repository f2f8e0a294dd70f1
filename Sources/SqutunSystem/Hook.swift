import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// How a hook run ended.
public enum HookResult: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)
    /// Still running at the deadline: killed (its process group with it) and reaped.
    case timedOut
    /// posix_spawn failed (ENOENT, EACCES, ENOEXEC: the program could not be
    /// run), or the run could not be set up; EINVAL: an argument or the
    /// environment held a NUL byte, or a name held '='; ECHILD: something
    /// else in the process reaped the hook, so how it ended is unknown.
    case spawnFailed(Errno)

    /// Exit status 0: the only success.
    public var succeeded: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case let .exited(code): return "exited with status \(code)"
        case let .signaled(signal): return "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
        case .timedOut: return "did not finish in time and was killed"
        case let .spawnFailed(errno): return "could not be started (\(errno))"
        }
    }
}

/// Runs the operator's hook program (server mode: a client's tun came up or
/// went down) as the root helper, without a shell: posix_spawn of `program`
/// with `arguments`, exactly `environment` (nothing of the helper's own),
/// stdin /dev/null, stdout and stderr into one pipe whose lines go to
/// `logLine` as they arrive. The child inherits no other fd (the helper
/// holds tun fds, the UDP socket and the channel), no blocked signal and no
/// ignored one, and leads its own process group.
///
/// Bounded in time and output: the run ends at the hook's exit or at
/// `timeoutMs`, whichever comes first; at the deadline the hook's process
/// group gets SIGKILL. Either way the hook is reaped (no zombie), and the
/// pipe is read no further than what is already in it once the hook has
/// exited, so a background child that keeps the pipe open cannot hold the
/// helper. At most `maxLoggedLines` lines are passed on, each cut to
/// `maxLineBytes` bytes and made printable, then one "... N more lines".
public enum Hook {
    public static let maxLoggedLines = 20
    public static let maxLineBytes = 200
    /// What is read after the hook has exited (what it and its children
    /// wrote before): enough for the line cap, and a bound on the time.
    static let drainLimit = 64 * 1024

    public static func run(program: String, arguments: [String], environment: [(name: String, value: String)],
                           timeoutMs: Int, logLine: (String) -> Void) -> HookResult {
        let entries = environment.map { "\($0.name)=\($0.value)" }
        guard !environment.contains(where: { $0.name.isEmpty || $0.name.utf8.contains(UInt8(ascii: "=")) }),
              !([program] + arguments + entries).contains(where: { $0.utf8.contains(0) }) else {
            return .spawnFailed(Errno(EINVAL))
        }
        let deadline = MonotonicClock.nowMs() + UInt64(max(0, timeoutMs))
        let output: (read: FileDescriptor, write: FileDescriptor)
        do throws(Errno) {
            // Blocking: the hook's writes must wait for us, not fail with
            // EAGAIN. Our end is made non-blocking below.
            output = try FileDescriptor.makePipe()
        } catch {
            return .spawnFailed(error)
        }
        defer { output.read.close() }
        _ = fcntl(output.read.rawValue, F_SETFL, fcntl(output.read.rawValue, F_GETFL) | O_NONBLOCK)

        let pid: pid_t
        switch spawn(program: program, arguments: arguments, environment: entries, output: output.write) {
        case let .success(started): pid = started
        case let .failure(error): return .spawnFailed(error)
        }
        return withoutActuallyEscaping(logLine) { logLine in
            var lines = LineCollector(logLine: logLine)
            defer { lines.finish() }
            return Watch(pid: pid, output: output.read, deadline: deadline).run(&lines)
        }
    }

    /// posix_spawn with stdin /dev/null, `output` as stdout and stderr, every
    /// other fd closed; closes the parent's copy of `output`.
    private static func spawn(program: String, arguments: [String], environment: [String],
                              output: FileDescriptor) -> Result<pid_t, Errno> {
        defer { output.close() }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // A pipe end that is itself 1 (a helper started with stdin and
        // stdout closed): glibc's dup2 action onto the same number clears
        // close-on-exec (POSIX requires it), so the hook still has it.
        posix_spawn_file_actions_adddup2(&actions, output.rawValue, 1)
        posix_spawn_file_actions_adddup2(&actions, output.rawValue, 2)
        let closing = squtun_spawn_closefrom(&actions, 3)
        guard closing == 0 else { return .failure(Errno(closing)) }

        var pid: pid_t = 0
        let code = CStringList([program] + arguments).withPointers { argv in
            CStringList(environment).withPointers { envp in
                squtun_spawn_clean(&pid, program, argv, envp, &actions, 1)
            }
        }
        return code == 0 ? .success(pid) : .failure(Errno(code))
    }

    /// One running hook: its pid, our end of its output, and when it must end.
    private struct Watch {
        let pid: pid_t
        let output: FileDescriptor
        let deadline: UInt64

        /// Reads output until the hook exits or the deadline passes; reaps it.
        func run(_ lines: inout LineCollector) -> HookResult {
            // Readable once the hook has ended; without it (kernels before
            // 5.3), waitpid is asked every 20 ms.
            let exitFD = squtun_pidfd_open(pid)
            defer { if exitFD >= 0 { FileDescriptor(rawValue: exitFD).close() } }
            var outputOpen = true
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
            defer { chunk.deallocate() }
            while true {
                if let ended = reap(block: false) {
                    if outputOpen { drain(&lines, chunk) }
                    return ended
                }
                let now = MonotonicClock.nowMs()
                guard now < deadline else {
                    // The group first: what the hook started must not live on with our pipe.
                    _ = kill(-pid, SIGKILL)
                    _ = kill(pid, SIGKILL)
                    _ = reap(block: true)
                    return .timedOut
                }
                let left = Int32(clamping: deadline - now)
                var watched = [pollfd(fd: outputOpen ? output.rawValue : -1, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: exitFD, events: Int16(POLLIN), revents: 0)]
                // Not retried on EINTR with the same timeout (the helper's
                // SIGCHLD handler interrupts it): the loop works out what
                // is left of the time first.
                _ = poll(&watched, 2, exitFD >= 0 ? left : min(left, 20))
                if outputOpen && watched[0].revents != 0 {
                    switch readOnce(into: chunk) {
                    case let .bytes(n): lines.add(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                    case .nothingYet: break
                    case .ended: outputOpen = false
                    }
                }
            }
        }

        /// What one read got.
        private enum Got { case bytes(Int), nothingYet, ended }

        private func readOnce(into chunk: UnsafeMutableRawBufferPointer) -> Got {
            do throws(Errno) {
                guard let n = try output.read(into: chunk) else { return .nothingYet }
                return n > 0 ? .bytes(n) : .ended
            } catch {
                return .ended
            }
        }

        /// What is already in the pipe, up to `drainLimit`, without waiting.
        private func drain(_ lines: inout LineCollector, _ chunk: UnsafeMutableRawBufferPointer) {
            var taken = 0
            while taken < Hook.drainLimit, case let .bytes(n) = readOnce(into: chunk) {
                lines.add(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                taken += n
            }
        }

        /// waitpid; nil while the hook still runs (or is only stopped).
        private func reap(block: Bool) -> HookResult? {
            while true {
                var status: Int32 = 0
                let r: Int32
                do throws(Errno) {
                    r = try retryingEINTR { waitpid(pid, &status, block ? 0 : WNOHANG) }
                } catch {
                    return .spawnFailed(error)  // ECHILD: something else reaped it
                }
                if r == 0 { return nil }
                let signal = status & 0x7f
                if signal == 0 { return .exited((status >> 8) & 0xff) }
                if signal != 0x7f { return .signaled(signal) }
                if !block { return nil }
            }
        }
    }
}

/// Splits a hook's output into lines for the log, with the caps.
private struct LineCollector {
    let logLine: (String) -> Void
    private var current: [UInt8] = []
    private var cut = false
    private var logged = 0
    private var more = 0

    init(logLine: @escaping (String) -> Void) { self.logLine = logLine }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                endLine()
            } else if current.count < Hook.maxLineBytes {
                current.append(byte)
            } else {
                cut = true
            }
        }
    }

    /// The last line (without a newline) and the count of those not logged.
    mutating func finish() {
        endLine()
        if more > 0 { logLine("... \(more) more line\(more == 1 ? "" : "s")") }
    }

    /// Empty lines are not logged (nor counted).
    private mutating func endLine() {
        defer { current.removeAll(keepingCapacity: true); cut = false }
        guard !current.isEmpty else { return }
        guard logged < Hook.maxLoggedLines else { more += 1; return }
        logged += 1
        logLine(Sanitize.line(String(decoding: current, as: UTF8.self)) + (cut ? "..." : ""))
    }
}

/// NUL-terminated copies of strings and a NULL-terminated array of them,
/// for argv and envp; freed after `withPointers`.
private struct CStringList {
    let strings: [String]
    init(_ strings: [String]) { self.strings = strings }

    func withPointers<R>(_ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { pointers.forEach { free($0) } }
        return body(pointers)
    }
}
