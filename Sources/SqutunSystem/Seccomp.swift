import Shared
import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// The worker's system-call allow-list (libseccomp), loaded after the
/// privilege drop, as the last step before the data loop.
///
/// Default action: KILL_PROCESS. A call outside the list means a bug or an
/// exploit; either way the worker must stop at once, and the helper sees
/// "killed by SIGSYS" (the kernel's audit log names the syscall). ERRNO
/// would let an attacker probe and go on, and would hide the bug: the tests
/// run the real worker sequence (drop, filter, poll loop with the Swift
/// runtime, malloc, logging over the channel) under this filter, so the
/// list is known to be enough. The same action covers foreign
/// architectures (x32/i386 system calls on x86_64).
public enum Seccomp {
    /// One argument test (libseccomp's SCMP_A* macros are not visible to Swift).
    public struct Condition: Sendable {
        public let argument: UInt32
        public let operation: scmp_compare
        public let a: UInt64
        public let b: UInt64

        /// (arg & mask) == value
        public static func masked(_ argument: UInt32, _ mask: UInt64, equals value: UInt64) -> Condition {
            Condition(argument: argument, operation: SCMP_CMP_MASKED_EQ, a: mask, b: value)
        }
        public static func equal(_ argument: UInt32, _ value: UInt64) -> Condition {
            Condition(argument: argument, operation: SCMP_CMP_EQ, a: value, b: 0)
        }
    }

    public struct Rule: Sendable {
        public let syscall: String
        public let why: String
        public var conditions: [Condition] = []
    }

    public enum Mode: Sendable {
        /// The chrooted worker: logs go over the channel.
        case worker
        /// A server's worker: the worker's list, and `connect`, with which
        /// a client's own UDP socket follows the client when it roams.
        case serverWorker
        /// The unprivileged single process: also empties its own pid file at
        /// exit, and logs to syslog itself (on a socket opened before).
        case singleProcess
    }

    /// THE allow-list. Names that do not exist on this architecture (e.g.
    /// `poll` on arm64) are skipped. Everything else kills the process.
    /// `tunFD` (single process with tun offloads): the one ioctl that
    /// switches the device's offloads off at exit, on that fd, with 0.
    /// `pidFileFD` (single process): ftruncate to 0 of that fd alone.
    ///
    /// The single process gets no `socket`, `connect` or `unlink`: a
    /// compromised one could reach any Unix socket of its user (D-Bus and
    /// the systemd user manager, whose transient units run unfiltered;
    /// ssh-agent; X11) and remove any file its user may. What logging needs
    /// (the syslog socket, `SyslogSocket`) is opened before the filter, and
    /// at exit it empties its pid file through the fd it holds instead of
    /// removing it (the next start takes the files over).
    public static func allowList(mode: Mode = .worker, pid: Int32 = getpid(), tunFD: Int32? = nil,
                          pidFileFD: Int32? = nil) -> [Rule] {
        var extra: [Rule] = []
        if mode == .singleProcess, let pidFileFD {
            extra.append(Rule(syscall: "ftruncate", why: "empty the pid file at exit, through the fd that holds its lock",
                              conditions: [.equal(0, UInt64(UInt32(bitPattern: pidFileFD))), .equal(1, 0)]))
        }
        if mode == .singleProcess, let tunFD {
            extra.append(Rule(syscall: "ioctl", why: "TUNSETOFFLOAD 0 on the tun at exit: the device left as found",
                              conditions: [.equal(0, UInt64(UInt32(bitPattern: tunFD))),
                                           .equal(1, UInt64(Tun.TUNSETOFFLOAD)), .equal(2, 0)]))
        }
        if mode == .serverWorker {
            // Only on descriptors it holds: it cannot make a socket (no
            // `socket`), and the Unix sockets it holds (the channel, the
            // status listener and its connections) are connected or
            // listening, where connect fails. Its UDP sockets could send
            // anywhere already.
            extra.append(Rule(syscall: "connect", why: "a client's own UDP socket follows its client (roaming)"))
        }
        return base(pid: pid) + extra
    }

    private static func base(pid: Int32) -> [Rule] {
        let noExec = Condition.masked(2, UInt64(PROT_EXEC), equals: 0)
        return [
            // Packet I/O and logging.
            Rule(syscall: "read", why: "tun packets in; wake pipe drain"),
            Rule(syscall: "write", why: "tun packets out; status reply; stderr"),
            Rule(syscall: "writev", why: "glibc's fatal-error messages (__libc_message)"),
            Rule(syscall: "recvfrom", why: "UDP datagrams in"),
            Rule(syscall: "sendto", why: "UDP datagrams out"),
            Rule(syscall: "recvmmsg", why: "batched UDP in"),
            Rule(syscall: "sendmmsg", why: "batched UDP out"),
            Rule(syscall: "recvmsg", why: "helper channel"),
            Rule(syscall: "sendmsg", why: "helper channel: log lines"),
            // The loop.
            Rule(syscall: "poll", why: "the main loop (x86_64 glibc poll)"),
            Rule(syscall: "ppoll", why: "the main loop (glibc poll on arm64; ppoll with a mask)"),
            Rule(syscall: "clock_gettime", why: "timestamps, keepalive timer (when the vDSO cannot serve the clock)"),
            Rule(syscall: "restart_syscall", why: "poll resumed after SIGSTOP/SIGCONT (Ctrl-Z of a -f run)"),
            // The server's loop (Epoll): one wait over the socket and every
            // client tun, whose set changes as clients come and go (their
            // tuns arrive over the channel while the filter is in). These
            // act only on the worker's own epoll instance and fds it holds:
            // nothing here opens, names or reaches anything new.
            Rule(syscall: "epoll_create1", why: "the server loop's epoll instance"),
            Rule(syscall: "epoll_ctl", why: "a client's tun added to / removed from the server loop"),
            Rule(syscall: "epoll_wait", why: "the server loop's wait (x86_64 glibc epoll_wait)"),
            Rule(syscall: "epoll_pwait", why: "the server loop's wait (glibc epoll_wait on arm64)"),
            // Status socket.
            Rule(syscall: "accept4", why: "status connections"),
            Rule(syscall: "getsockopt", why: "SO_PEERCRED of a status client"),
            Rule(syscall: "close", why: "status connections; fds of a bad channel message"),
            // Crypto.
            Rule(syscall: "getrandom", why: "OpenSSL RAND, Swift random, squtun_getrandom"),
            // Memory: glibc malloc and the Swift runtime. Never executable memory.
            Rule(syscall: "brk", why: "malloc (main arena)"),
            Rule(syscall: "mmap", why: "malloc of large blocks; not PROT_EXEC", conditions: [noExec]),
            Rule(syscall: "munmap", why: "free of large blocks"),
            Rule(syscall: "mremap", why: "realloc of large blocks"),
            Rule(syscall: "madvise", why: "malloc trimming (MADV_DONTNEED); grants nothing"),
            Rule(syscall: "futex", why: "Swift runtime locks and once-initialisation"),
            // Signals and ending.
            Rule(syscall: "rt_sigreturn", why: "return from the SIGTERM/SIGHUP/... handler"),
            Rule(syscall: "rt_sigprocmask", why: "glibc raise()/abort() block signals around tgkill"),
            Rule(syscall: "getpid", why: "glibc raise(); OpenSSL fork detection"),
            Rule(syscall: "gettid", why: "glibc raise()"),
            Rule(syscall: "tgkill", why: "abort() raising SIGABRT at itself only",
                 conditions: [.equal(0, UInt64(UInt32(bitPattern: pid))), .equal(2, UInt64(SIGABRT))]),
            Rule(syscall: "exit", why: "glibc _exit's fallback after exit_group"),
            Rule(syscall: "exit_group", why: "process exit"),
            // stdio: the first print/fputs fstats its stream (glibc 2.33+: newfstatat with AT_EMPTY_PATH).
            Rule(syscall: "fstat", why: "stdio buffer set-up"),
            Rule(syscall: "newfstatat", why: "stdio buffer set-up (fstat in glibc 2.33+)"),
        ]
    }

    /// The default action: kill the whole process (kernel 4.14+,
    /// libseccomp API level 3+), or the thread on older systems (the
    /// worker has one thread, so the effect is the same).
    public static var defaultAction: UInt32 {
        seccomp_api_get() >= 3 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_KILL
    }

    /// Builds the filter (not loaded). The caller releases it with
    /// seccomp_release.
    ///
    /// `allThreads` (TSYNC) puts every thread of the process under the
    /// filter. The worker has one thread; TSYNC makes sure a thread that
    /// some library might start is not left unfiltered. Tests turn it off:
    /// their child processes are XCTest runners with idle Dispatch threads.
    public static func makeFilter(rules: [Rule], allThreads: Bool = true) throws(SystemError) -> scmp_filter_ctx {
        let action = defaultAction
        guard let filter = seccomp_init(action) else { throw .seccompFailed(step: "seccomp_init", errno: Errno(ENOMEM)) }
        func check(_ result: Int32, _ step: String) throws(SystemError) {
            if result < 0 {
                seccomp_release(filter)
                throw .seccompFailed(step: step, errno: Errno(-result))
            }
        }
        try check(seccomp_attr_set(filter, SCMP_FLTATR_ACT_BADARCH, action), "badarch action")
        // Every thread, not just the caller (there should be just one).
        if allThreads { try check(seccomp_attr_set(filter, SCMP_FLTATR_CTL_TSYNC, 1), "tsync") }
        for rule in rules {
            let number = seccomp_syscall_resolve_name(rule.syscall)
            if number == __NR_SCMP_ERROR { continue }
            let args = rule.conditions.map {
                scmp_arg_cmp(arg: $0.argument, op: $0.operation, datum_a: $0.a, datum_b: $0.b)
            }
            try check(args.withUnsafeBufferPointer {
                seccomp_rule_add_array(filter, SCMP_ACT_ALLOW, number, UInt32($0.count), $0.baseAddress)
            }, "rule for \(rule.syscall)")
        }
        return filter
    }

    /// Loads the allow-list into the kernel for this process. Irreversible.
    /// Also sets no_new_privs (libseccomp's default), which the privilege
    /// drop already did.
    public static func install(mode: Mode = .worker, tunFD: Int32? = nil, pidFileFD: Int32? = nil,
                        allThreads: Bool = true) throws(SystemError) {
        let filter = try makeFilter(rules: allowList(mode: mode, tunFD: tunFD, pidFileFD: pidFileFD), allThreads: allThreads)
        defer { seccomp_release(filter) }
        let result = seccomp_load(filter)
        if result < 0 { throw .seccompFailed(step: "seccomp_load", errno: Errno(-result)) }
        isInstalled = true
    }

    /// Whether this process is under the filter (then it must not call
    /// anything outside the list, e.g. unlink at exit).
    public nonisolated(unsafe) private(set) static var isInstalled = false
}
