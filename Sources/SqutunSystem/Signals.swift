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
        let pipe: (read: FileDescriptor, write: FileDescriptor)
        do throws(Errno) {
            pipe = try FileDescriptor.makePipe(nonBlocking: true)
        } catch {
            throw .socketFailed(what: "the signal wake pipe", operation: "pipe2", errno: error)
        }
        // SIGPIPE: a failed write must be an EPIPE, not a death.
        signal(SIGPIPE, SIG_IGN)
        guard handled.withUnsafeBufferPointer({ squtun_signals_install($0.baseAddress, Int32($0.count), pipe.write.rawValue) }) == 0 else {
            throw .socketFailed(what: "the signal handlers", operation: "sigaction", errno: .current)
        }
        return pipe.read
    }

    /// Signals received since the last call.
    public static func take() -> UInt64 { squtun_take_signals() }

    public static func has(_ set: UInt64, _ s: Int32) -> Bool { set & (1 << UInt64(s)) != 0 }
}
