import Shared
#if canImport(Glibc)
import Glibc
#endif

/// An errno value captured right after a failing call. Per-packet functions
/// throw this (typed throws: no existential box, so no allocation on the
/// error path either); setup code wraps it in a `SystemError` that says what
/// failed and what to do.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's errno, now.
    public static var current: Errno { Errno(errno) }

    /// strerror text, e.g. "Address already in use".
    public var description: String { SharedError.errnoText(rawValue) }

    public static let wouldBlock = Errno(EAGAIN)

    /// EAGAIN and EWOULDBLOCK are the same on Linux; compare both anyway.
    public var isWouldBlock: Bool { rawValue == EAGAIN || rawValue == EWOULDBLOCK }
}

/// THE EINTR loop: calls `body` until it does not fail with EINTR. A result
/// of -1 becomes a thrown `Errno`. Do not use it for close(2): on Linux the
/// fd is gone even when close reports EINTR, and retrying could close an fd
/// another part of the program just opened.
@inline(__always)
public func retryingEINTR<R: BinaryInteger>(_ body: () -> R) throws(Errno) -> R {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code != EINTR { throw Errno(code) }
    }
}
