import Shared
import Glibc
import CShim

/// The signals squtun handles, recorded by a C handler that also writes a
/// byte to a non-blocking pipe the poll loop watches, so a signal arriving
/// just before poll() still wakes it.
public enum Signals {
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD]

    /// Installs the handlers; returns the read end of the wake pipe.
    public static func install() throws(SystemError) -> FileDescriptor {
        var fds: [Int32] = [-1, -1]
        guard squtun_pipe2(&fds, O_NONBLOCK | O_CLOEXEC) == 0 else {
            throw .socketFailed(what: "the signal wake pipe", operation: "pipe2", errno: .current)
        }
        // SIGPIPE: a failed write must be an EPIPE, not a death.
        signal(SIGPIPE, SIG_IGN)
        guard handled.withUnsafeBufferPointer({ squtun_signals_install($0.baseAddress, Int32($0.count), fds[1]) }) == 0 else {
            throw .socketFailed(what: "the signal handlers", operation: "sigaction", errno: .current)
        }
        return FileDescriptor(rawValue: fds[0])
    }

    /// Signals received since the last call.
    public static func take() -> UInt64 { squtun_take_signals() }

    public static func has(_ set: UInt64, _ s: Int32) -> Bool { set & (1 << UInt64(s)) != 0 }
}
