#if canImport(Glibc)
import Glibc
#endif
import Shared

/// The session identifiers this tunnel end used in its last runs, kept in
/// a small file next to its pid file (`squtun-tun0.pid` →
/// `squtun-tun0.sessions`). Two uses (PROTOCOL.md §2, §6 check 2):
///
/// - A datagram of one of our own former sessions is refused as reflected,
///   as one of the current session is. Without this, with the time checks
///   off (`-c 0`), a restarted end took its own previous run's datagrams,
///   sent back to it, for its peer's newest session, and then refused the
///   real peer's older one until the peer restarted.
/// - A new session is greater than every former one even when the clock
///   went back between runs, so the peer does not refuse it as old.
///
/// The file is a convenience that must never stop a start: a file that
/// cannot be read or written is a warning, and the run goes on with what it
/// could learn. It is read with O_NOFOLLOW and only if this user owns it,
/// and replaced by rename from a file made with O_EXCL, so a planted
/// symlink or file in a shared directory is refused, not followed.
public enum SessionLog {
    /// How many former sessions are kept (newest last).
    public static let capacity = 32
    public static let maxFileBytes = 4096

    public struct Outcome {
        public var start: RunStart
        public var former: [UInt64]
        public var warning: String?
    }

    public static func path(forPidFile pidfile: String) -> String {
        (pidfile.hasSuffix(".pid") ? String(pidfile.dropLast(4)) : pidfile) + ".sessions"
    }

    /// Reads the former sessions, moves `start`'s session above them if the
    /// clock went back, and records it. Call with the pid file held.
    public static func update(path: String, start: RunStart) -> Outcome {
        let (former, problem) = read(path: path)
        var warning = problem.map { "session log \(SharedError.quote(path)): \($0); starting without it" }
        var start = start
        if let highest = former.max(), start.session <= highest {
            let tick = (highest >> UInt64(RunStart.randomBits)) &+ 1
            let low = start.session & (RunStart.tickNs - 1)
            start = RunStart(session: tick << UInt64(RunStart.randomBits) | low, wallMs: start.wallMs,
                             monotonicMs: start.monotonicMs)
        }
        let kept = Array((former + [start.session]).suffix(capacity))
        if let why = write(path: path, sessions: kept), warning == nil {
            warning = "session log \(SharedError.quote(path)): \(why)"
        }
        return Outcome(start: start, former: former.filter { $0 != start.session }, warning: warning)
    }

    /// The former sessions (an absent file: none), or why none could be read.
    public static func read(path: String) -> (sessions: [UInt64], problem: String?) {
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        } catch {
            return ([], error.rawValue == ENOENT ? nil : "cannot open: \(error)")
        }
        defer { fd.close() }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return ([], "not a regular file") }
        guard st.st_uid == geteuid() else { return ([], "owned by uid \(st.st_uid), not by this user") }
        guard st.st_size <= maxFileBytes else { return ([], "larger than \(maxFileBytes) bytes") }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: maxFileBytes + 1, alignment: 1)
        defer { bytes.deallocate() }
        let total: Int
        do throws(Errno) {
            total = try fd.readAll(into: bytes)
        } catch {
            return ([], "cannot read: \(error)")
        }
        guard total <= maxFileBytes else { return ([], "larger than \(maxFileBytes) bytes") }
        var list: [UInt64] = []
        for line in bytes[0..<total].split(separator: UInt8(ascii: "\n")) {
            guard line.count == 16, let value = UInt64(String(decoding: line, as: UTF8.self), radix: 16) else {
                return ([], "not a list of 16-digit hex session ids")
            }
            list.append(value)
        }
        return (Array(list.suffix(capacity)), nil)
    }

    /// Replaces the file; nil, or why it could not.
    public static func write(path: String, sessions: [UInt64]) -> String? {
        let temporary = path + ".new"
        unlink(temporary)  // a leftover of a run that died here; O_EXCL below refuses anything else
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY, mode: 0o644)
        } catch {
            return "cannot create \(SharedError.quote(temporary)): \(error)"
        }
        let text = sessions.map { hex16($0) + "\n" }.joined()
        var failure: String?
        do {
            try fd.writeAll(text)
        } catch {
            failure = "cannot write: \(error)"
        }
        fd.close()
        if failure == nil && rename(temporary, path) != 0 { failure = "cannot write: \(SharedError.errnoText())" }
        if failure != nil { unlink(temporary) }
        return failure
    }

    public static func hex16(_ v: UInt64) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
