#if canImport(Glibc)
import Glibc
#endif

/// An open fd together with the duty to close it. Not copyable, so the
/// duty has one holder at a time and the fd is closed exactly once: by
/// `close()`, or when the holder goes away. `release()` ends the duty
/// without closing, for an fd whose closing someone else takes over (the
/// helper, once it has sent its copy to the worker). `Tun`, `UDPSocket`
/// and the helper/worker channel keep theirs in one of these (a type with
/// other stored properties, a name say, cannot `discard self`; this one can).
public struct OwnedDescriptor: ~Copyable, Sendable {
    /// A view of the fd, for I/O and poll(2); not for closing.
    public let fd: FileDescriptor

    /// Takes over closing `fd`.
    public init(_ fd: FileDescriptor) { self.fd = fd }

    deinit { fd.close() }

    public consuming func close() {
        fd.close()
        discard self
    }

    /// The fd, open, and the duty to close it with it.
    public consuming func release() -> FileDescriptor {
        let fd = self.fd
        discard self
        return fd
    }
}
