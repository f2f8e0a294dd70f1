import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// The root-only status socket (`squtun status IFACE`): a Unix stream
/// listener at e.g. /run/squtun/squtun-tun0.sock, mode 0600, owned by root.
/// The helper creates it and passes the listener to the worker, which
/// answers each connection with the status text and closes it.
public enum ControlSocket {
    public static let timeoutMs: Int64 = 2000
    /// A status reply larger than this is cut (protects the client).
    public static let maxReplyBytes = 1 << 20

    /// Creates the listener (non-blocking, close-on-exec). A stale socket
    /// file left by a crash is removed; a live one (something accepts
    /// connections) or a non-socket at `path` is an error. In a directory
    /// shared with a less trusted user (the package's sticky /run/squtun),
    /// an entry owned by another uid is removed whatever it is: it is not
    /// this squtun's (the pid file, taken first, is), and a squatter must
    /// not keep the socket's path or answer in its place. bind() never
    /// follows a symlink, and the sticky bit keeps others off ours.
    public static func listen(path: String) throws(SystemError) -> FileDescriptor {
        guard path.utf8.count < 108 else { throw .controlPathTooLong(path: path) }
        var st = stat()
        if lstat(path, &st) != 0 {
            // Nothing there: the path is free.
        } else if st.st_uid != geteuid() {
            if unlink(path) != 0 && errno != ENOENT {
                throw .controlFailed(path: path, operation: "unlink (it belongs to uid \(st.st_uid))", errno: .current)
            }
        } else {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw .controlNotSocket(path: path) }
            if let probe = try? connect(path: path) {
                probe.close()
                throw .controlInUse(path: path)
            }
            if unlink(path) != 0 && errno != ENOENT {
                throw .controlFailed(path: path, operation: "unlink stale socket", errno: .current)
            }
        }
        RuntimeDirectory.ensure(forFile: path)
        let raw = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard raw >= 0 else { throw .controlFailed(path: path, operation: "socket", errno: .current) }
        let fd = FileDescriptor(rawValue: raw)
        // umask makes the file 0600 from the start: there is no moment at
        // which another user could connect. Process-wide, so this must run
        // while the helper is single-threaded (it is).
        let old = umask(0o177)
        let bound = withAddress(path) { bind(raw, $0, $1) }
        let bindErrno = Errno.current
        umask(old)
        guard bound == 0 else {
            fd.close()
            throw .controlFailed(path: path, operation: "bind", errno: bindErrno)
        }
        guard Glibc.listen(raw, 8) == 0 else {
            let code = Errno.current
            fd.close()
            unlink(path)
            throw .controlFailed(path: path, operation: "listen", errno: code)
        }
        return fd
    }

    /// Removes the socket file (at shutdown, by the helper: the chrooted
    /// worker cannot see it).
    public static func removeFile(path: String) {
        var st = stat()
        if lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
    }

    public enum AcceptResult: Equatable {
        case nothingPending
        case replied
        /// The client's uid was not allowed; it was hung up on.
        case refused(uid: UInt32)
        case failed(Errno)
    }

    /// Accepts one pending connection, checks SO_PEERCRED (uid 0, or
    /// `allowedUID`), writes `text` without blocking and closes. For the
    /// worker's poll loop: accept4, getsockopt, write and close are all in
    /// the seccomp allow-list.
    @discardableResult
    public static func acceptAndReply(listener: FileDescriptor, text: String, allowedUID: UInt32 = 0) -> AcceptResult {
        let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let accepted: Int32
        do throws(Errno) {
            accepted = try retryingEINTR { squtun_accept4(listener.rawValue, flags) }
        } catch {
            return error.isWouldBlock || error.rawValue == ECONNABORTED ? .nothingPending : .failed(error)
        }
        let client = FileDescriptor(rawValue: accepted)
        defer { client.close() }
        var uid: uid_t = 0
        var pid: pid_t = 0
        guard squtun_peer_credentials(accepted, &uid, &pid) == 0 else { return .failed(.current) }
        guard uid == 0 || uid == allowedUID else { return .refused(uid: uid) }
        do throws(Errno) {
            try client.writeAll(text)
            return .replied
        } catch {
            return .failed(error)
        }
    }

    /// The `squtun status` client: connects, reads until the daemon closes,
    /// at most `timeoutMs` in all.
    public static func connectAndRead(path: String, interface: String, timeoutMs: Int64 = timeoutMs) throws(SystemError) -> String {
        guard path.utf8.count < 108 else { throw .controlPathTooLong(path: path) }
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try connect(path: path)
        } catch {
            switch error.rawValue {
            case ENOENT, ECONNREFUSED, ENOTDIR: throw .controlNoDaemon(interface: interface, path: path, errno: error)
            case EACCES, EPERM: throw .controlPermission(path: path, errno: error)
            case EAGAIN: throw .controlTimeout(interface: interface, path: path)
            default: throw .controlFailed(path: path, operation: "connect", errno: error)
            }
        }
        defer { fd.close() }
        let deadline = Int64(MonotonicClock.nowMs()) + timeoutMs
        var reply: [UInt8] = []
        let result: SystemError? = withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { chunk in
            while true {
                let left = deadline - Int64(MonotonicClock.nowMs())
                if left <= 0 { return .controlTimeout(interface: interface, path: path) }
                var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, Int32(left))
                if ready < 0 {
                    // Not retryingEINTR: the timeout must shrink on each try.
                    if errno == EINTR { continue }
                    return .controlFailed(path: path, operation: "poll", errno: .current)
                }
                if ready == 0 { continue }  // the deadline check above ends it
                do throws(Errno) {
                    guard let n = try fd.read(into: chunk) else { continue }
                    if n == 0 { return nil }
                    reply.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                    if reply.count > maxReplyBytes { return nil }
                } catch {
                    return .controlFailed(path: path, operation: "read", errno: error)
                }
            }
        }
        if let result { throw result }
        // The daemon hangs up without a word on clients that are not root.
        if reply.isEmpty { throw .controlPermission(path: path, errno: Errno(EACCES)) }
        return String(decoding: reply, as: UTF8.self)
    }

    // MARK: Helpers

    /// A non-blocking connected client socket. Unix connect completes at
    /// once (or EAGAIN when the backlog is full).
    private static func connect(path: String) throws(Errno) -> FileDescriptor {
        let raw = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard raw >= 0 else { throw .current }
        let fd = FileDescriptor(rawValue: raw)
        do throws(Errno) {
            _ = try retryingEINTR { withAddress(path) { Glibc.connect(raw, $0, $1) } }
        } catch {
            fd.close()
            throw error
        }
        return fd
    }

    /// `path` as a sockaddr_un (cut to fit: callers check the length) for bind/connect.
    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { dst in
            for (i, byte) in path.utf8.prefix(dst.count - 1).enumerated() { dst[i] = byte }
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }
}
