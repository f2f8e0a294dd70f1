import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// A thin typed wrapper around an fd number, in the style of swift-system.
/// It does not own or close anything by itself: whoever opened it calls
/// `close()` exactly once.
public struct FileDescriptor: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let standardInput = FileDescriptor(rawValue: 0)
    public static let standardOutput = FileDescriptor(rawValue: 1)
    public static let standardError = FileDescriptor(rawValue: 2)

    public var description: String { "fd \(rawValue)" }

    /// Closes the fd, ignoring the result: on Linux the number is released
    /// even if close reports EINTR or EIO, so there is nothing to retry.
    public func close() {
        _ = Glibc.close(rawValue)
    }

    /// One read(2) into `buffer`. Returns the byte count (0 = end of file),
    /// or nil if the fd is non-blocking and nothing is ready. For a tun fd
    /// one read is one packet. No allocation.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        do throws(Errno) {
            return try retryingEINTR { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
        } catch let failure where failure.isWouldBlock {
            return nil
        }
    }

    /// One write(2). Returns the byte count written, or nil if the fd is
    /// non-blocking and would block. No allocation.
    @inline(__always)
    public func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int? {
        do throws(Errno) {
            return try retryingEINTR { Glibc.write(rawValue, bytes.baseAddress, bytes.count) }
        } catch let failure where failure.isWouldBlock {
            return nil
        }
    }

    /// Writes every byte, for blocking fds (files). A non-blocking fd that
    /// fills up throws EAGAIN rather than spinning.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[done...])
            guard let n = try write(rest) else { throw Errno.wouldBlock }
            done += n
        }
    }

    /// `text` as UTF-8, all of it (see the other `writeAll`).
    public func writeAll(_ text: String) throws(Errno) {
        var text = text
        // withUTF8 rethrows untyped: the typed error travels in a Result.
        let result = text.withUTF8 { bytes -> Result<Void, Errno> in
            do throws(Errno) {
                try writeAll(UnsafeRawBufferPointer(bytes))
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Reads until `buffer` is full or the file ends; returns the byte
    /// count. For blocking fds and regular files: a non-blocking fd with
    /// nothing ready throws EAGAIN rather than spinning.
    public func readAll(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        var total = 0
        while total < buffer.count {
            guard let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[total...])) else {
                throw Errno.wouldBlock
            }
            if n == 0 { break }
            total += n
        }
        return total
    }

    /// True if the number names an open fd of this process.
    public var isOpen: Bool { fcntl(rawValue, F_GETFD) != -1 }

    /// A close-on-exec duplicate numbered `atLeast` or higher.
    public func duplicate(atLeast minimum: Int32 = 0) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try retryingEINTR { fcntl(rawValue, F_DUPFD_CLOEXEC, minimum) })
    }

    /// open(2) with O_CLOEXEC always added.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try retryingEINTR { Glibc.open(path, flags | O_CLOEXEC, mode) })
    }
}

extension FileDescriptor {
    /// pipe2 with O_CLOEXEC (and O_NONBLOCK if asked).
    public static func makePipe(nonBlocking: Bool = false) throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: (Int32, Int32) = (-1, -1)
        let flags = O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)
        let r = withUnsafeMutableBytes(of: &fds) { raw in
            squtun_pipe2(raw.baseAddress!.assumingMemoryBound(to: Int32.self), flags)
        }
        guard r == 0 else { throw .current }
        return (FileDescriptor(rawValue: fds.0), FileDescriptor(rawValue: fds.1))
    }

    /// Reads and discards until the descriptor would block, ends or fails:
    /// empties a non-blocking wake pipe, whose bytes only say "look".
    public func drain() {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 1) { b in
            while (try? read(into: b)).flatMap({ $0 }).map({ $0 > 0 }) == true {}
        }
    }
}
