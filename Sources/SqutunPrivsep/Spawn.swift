import Shared
import SqutunSystem
#if canImport(Glibc)
import Glibc
#endif
import CShim

/// Starting the worker: posix_spawn of our own binary (not fork: unsafe in
/// a Swift process; not Foundation.Process: it would close the inherited
/// channel fd). The child gets exactly the fds mapped here, /dev/null on
/// any of 0-2 that the map does not name, and nothing else: every other
/// descriptor is closed in the child, also those the caller of squtun left
/// open without close-on-exec (`squtun … 7</etc/shadow`), which the
/// sandboxed worker must never hold. It also gets a clean environment, an
/// empty signal mask and default signal dispositions.
package enum Spawn {
    package static let workerPath = "/proc/self/exe"
    /// argv[0] is what `ps -f` shows; the worker sets the same as its name
    /// (Worker.main), which exec of /proc/self/exe would leave as "exe".
    package static let workerArguments = [Worker.processName, "--worker"]
    package static let workerEnvironment = ["SWIFT_BACKTRACE=enable=no", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]

    /// Starts `squtun --worker` with `channel` (the worker end) as fd 3.
    /// The caller closes its copy of the worker end afterwards.
    package static func worker(channel: borrowing Channel, extraEnvironment: [String] = []) throws(SystemError) -> pid_t {
        try spawn(path: workerPath, arguments: workerArguments, environment: workerEnvironment + extraEnvironment,
                  fileMap: [(channel.fd, Channel.workerFD.rawValue)])
    }

    /// posix_spawn with `fileMap` (source fd → fd number in the child).
    package static func spawn(path: String, arguments: [String], environment: [String],
                      fileMap: [(source: FileDescriptor, target: Int32)]) throws(SystemError) -> pid_t {
        // Sources are first copied above every target, so that mapping
        // a→3 while b already is 3 (or a is 3 itself, where dup2 would keep
        // the close-on-exec flag) cannot go wrong.
        var copies: [FileDescriptor] = []
        defer { copies.forEach { $0.close() } }
        for (source, _) in fileMap {
            do throws(Errno) {
                copies.append(try source.duplicate(atLeast: 64))
            } catch {
                throw .spawnFailed(path: path, errno: error)
            }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (copy, (_, target)) in zip(copies, fileMap) {
            posix_spawn_file_actions_adddup2(&actions, copy.rawValue, target)
        }
        // Not the caller's terminal or journal stream: a worker that could
        // write there could forge log lines or send terminal escapes.
        let targets = Set(fileMap.map(\.target))
        for fd in Int32(0)...2 where !targets.contains(fd) {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0)
        }
        // Everything above the highest mapped number, inherited or not.
        let closeFrom = max(2, targets.max() ?? 2) + 1
        let code = squtun_spawn_closefrom(&actions, closeFrom)
        guard code == 0 else { throw .spawnFailed(path: path, errno: Errno(code)) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard spawned == 0 else { throw .spawnFailed(path: path, errno: Errno(spawned)) }
        return pid
    }

    /// How a child ended.
    package enum ChildStatus: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        /// Decodes a waitpid status (the W* macros are not visible to Swift).
        package init?(waitStatus status: Int32) {
            let signal = status & 0x7f
            if signal == 0 { self = .exited((status >> 8) & 0xff) }
            else if signal != 0x7f { self = .signaled(signal) }
            else { return nil }  // stopped, not ended
        }

        package var description: String {
            switch self {
            case let .exited(code): return "exited with status \(code)"
            case let .signaled(signal) where signal == SIGSYS:
                return "killed by SIGSYS (a system call outside the seccomp allow-list; see the kernel log)"
            case let .signaled(signal): return "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
            }
        }
    }

    /// waitpid. With `block: false`, nil while the child still runs.
    package static func wait(_ pid: pid_t, block: Bool = true) throws(Errno) -> ChildStatus? {
        while true {
            var status: Int32 = 0
            let r = try retryingEINTR { waitpid(pid, &status, block ? 0 : WNOHANG) }
            if r == 0 { return nil }
            if let ended = ChildStatus(waitStatus: status) { return ended }
            if !block { return nil }
        }
    }
}
