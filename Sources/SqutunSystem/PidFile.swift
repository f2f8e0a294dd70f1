import Shared
#if canImport(Glibc)
import Glibc
#endif

/// /run/squtun: created 0755 by root on first use (it is a tmpfs, empty
/// after boot). Non-root callers must name an existing directory.
public enum RuntimeDirectory {
    public static func ensure(forFile path: String) {
        guard geteuid() == 0, let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return }
        let parent = String(path[..<slash])
        guard !parent.isEmpty else { return }
        var st = stat()
        if stat(parent, &st) == 0 { return }
        if mkdir(parent, 0o755) == 0 { chmod(parent, 0o755) }  // chmod: umask may have cut bits
    }
}

/// The daemon's pid file, held with an exclusive flock while it runs. The
/// lock, not the text, decides who runs: two racing starts cannot both win,
/// and a crashed daemon's lock is gone with it. Create it in the process
/// that stays (after any daemonizing fork); the fd is close-on-exec so the
/// worker does not inherit the lock.
///
/// The directory may be shared with a less trusted user: the package makes
/// /run/squtun sticky and writable by the group squtun, so that squtun
/// started as that user (SquTUN's `su squtun -c …`) can write its pid file
/// where root's are. So squtun writes only into a regular file that it
/// owns and that has no other name (a hard link would make the write land
/// in another file); anything else at the path that is not in use (locked)
/// is unlinked and the file made anew with O_EXCL, never followed or
/// written. The sticky bit keeps others from unlinking or replacing ours.
public struct PidFile: Sendable {
    public let path: String
    public let pid: Int32
    /// What to log about a stale file that was replaced, if there was one.
    public let note: String?
    private let fd: FileDescriptor

    /// Creates or takes over `path` for `pid`; `note` says if a stale file
    /// was replaced. Errors when another squtun for `interface` runs (lock
    /// held, or the file names a live process).
    public static func acquire(path: String, interface: String, pid: Int32 = getpid()) throws(SystemError) -> PidFile {
        RuntimeDirectory.ensure(forFile: path)
        let euid = geteuid()
        var note: String?
        // Each round either returns, throws, or saw the path change under
        // it (a previous owner unlinking, something replaced): bounded.
        for _ in 0..<5 {
            var entry = stat()
            guard lstat(path, &entry) == 0 else {
                let code = Errno.current
                guard code.rawValue == ENOENT else { throw .pidFileFailed(path: path, operation: "lstat", errno: code) }
                if let file = try create(path: path, pid: pid, note: note) { return file }
                continue
            }
            let type = entry.st_mode & S_IFMT
            let ours = entry.st_uid == euid && type == S_IFREG && entry.st_nlink == 1
            if entry.st_uid == euid && type != S_IFREG {
                // Our own (an administrator's) symlink or special file: not
                // ours to follow, write or remove.
                if type == S_IFLNK { throw .pidFileFailed(path: path, operation: "open", errno: Errno(ELOOP)) }
                throw .pidFileFailed(path: path, operation: "not a regular file", errno: Errno(EINVAL))
            }
            if type == S_IFREG {
                // Open it (read-only unless ours) to see whether a running
                // squtun holds it.
                let fd: FileDescriptor
                do throws(Errno) {
                    fd = try FileDescriptor.open(path, (ours ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK)
                } catch {
                    if error.rawValue == ENOENT || error.rawValue == ELOOP { continue }
                    if !ours && (error.rawValue == EACCES || error.rawValue == EPERM) {
                        throw .pidFileNotOurs(path: path, owner: entry.st_uid, you: euid)
                    }
                    throw .pidFileFailed(path: path, operation: "open", errno: error)
                }
                var st = stat()
                guard fstat(fd.rawValue, &st) == 0, st.st_dev == entry.st_dev, st.st_ino == entry.st_ino else {
                    fd.close()
                    continue
                }
                if flock(fd.rawValue, LOCK_EX | LOCK_NB) != 0 {
                    let code = Errno.current
                    let holder = readPid(fd)
                    fd.close()
                    if code.isWouldBlock {
                        if let holder, isAlive(holder) { throw .alreadyRunning(interface: interface, pid: holder, path: path) }
                        throw .pidFileBusy(interface: interface, path: path)
                    }
                    throw .pidFileFailed(path: path, operation: "flock", errno: code)
                }
                var now = stat()
                guard lstat(path, &now) == 0, now.st_dev == st.st_dev, now.st_ino == st.st_ino else {
                    fd.close()
                    continue  // unlinked by its previous owner between our open and our lock
                }
                if ours {
                    return try takeOver(fd, path: path, interface: interface, pid: pid)
                }
                // Locked by us, so no squtun uses it (every squtun holds its
                // lock). Its text does not count: anyone may write a live pid.
                fd.close()
            }
            // Not ours (another user's, linked elsewhere, a symlink, not a
            // regular file) and not in use: remove the name, then create.
            guard unlink(path) == 0 || errno == ENOENT else {
                let code = Errno.current
                if code.rawValue == EACCES || code.rawValue == EPERM {
                    throw .pidFileNotOurs(path: path, owner: entry.st_uid, you: euid)
                }
                throw .pidFileFailed(path: path, operation: "unlink", errno: code)
            }
            note = "removed \(path): " + describeForeign(entry, euid: euid)
        }
        throw .pidFileBusy(interface: interface, path: path)
    }

    /// A new file with O_EXCL (never an existing one, never through a link),
    /// locked and written. nil if something appeared at `path` first.
    private static func create(path: String, pid: Int32, note: String?) throws(SystemError) -> PidFile? {
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
        } catch {
            if error.rawValue == EEXIST { return nil }
            throw .pidFileFailed(path: path, operation: "open", errno: error)
        }
        // Fresh, so the lock is free unless another start just opened it:
        // then it owns the file and the next round reports it.
        guard flock(fd.rawValue, LOCK_EX | LOCK_NB) == 0 else {
            fd.close()
            return nil
        }
        try write(pid, to: fd, path: path)
        return PidFile(path: path, pid: pid, note: note, fd: fd)
    }

    /// Our own locked file: refuse if it names a live process, else write.
    private static func takeOver(_ fd: FileDescriptor, path: String, interface: String,
                                 pid: Int32) throws(SystemError) -> PidFile {
        // Locked. The text may still name a live process that predates
        // locking (or runs without it): be safe and refuse.
        var note: String?
        switch content(fd) {
        case .empty:
            break
        case let .pid(old) where old != pid && isAlive(old):
            fd.close()
            throw .alreadyRunning(interface: interface, pid: old, path: path)
        case let .pid(old):
            if old != pid { note = "removed stale pid file \(path) (pid \(old) not running)" }
        case .garbage:
            note = "removed stale pid file \(path) (it did not hold a pid)"
        }
        try write(pid, to: fd, path: path)
        return PidFile(path: path, pid: pid, note: note, fd: fd)
    }

    private static func write(_ pid: Int32, to fd: FileDescriptor, path: String) throws(SystemError) {
        do throws(Errno) {
            _ = try retryingEINTR { ftruncate(fd.rawValue, 0) }
            var text = "\(pid)\n"
            let (written, wanted) = text.withUTF8 { bytes in
                (pwrite(fd.rawValue, bytes.baseAddress, bytes.count, 0), bytes.count)
            }
            if written < 0 { throw Errno.current }
            guard written == wanted else { throw Errno(EIO) }
            _ = try retryingEINTR { fsync(fd.rawValue) }
        } catch {
            fd.close()
            unlink(path)
            throw .pidFileFailed(path: path, operation: "write", errno: error)
        }
    }

    private static func describeForeign(_ st: stat, euid: UInt32) -> String {
        let what: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: what = "a file"
        case S_IFLNK: what = "a symlink"
        case S_IFDIR: what = "a directory"
        default: what = "a special file"
        }
        if st.st_uid != euid { return "\(what) owned by uid \(st.st_uid), not squtun's pid file" }
        if st.st_mode & S_IFMT == S_IFREG { return "\(what) with \(st.st_nlink) names, not squtun's pid file" }
        return "\(what), not squtun's pid file"
    }

    /// Unlinks the file if it still is ours (same inode, our pid in it),
    /// then releases the lock. Returns whether it unlinked.
    @discardableResult
    public func remove() -> Bool {
        defer { fd.close() }
        var mine = stat(), there = stat()
        guard case .pid(pid) = Self.content(fd),
              fstat(fd.rawValue, &mine) == 0, lstat(path, &there) == 0,
              mine.st_dev == there.st_dev, mine.st_ino == there.st_ino else { return false }
        return unlink(path) == 0
    }

    /// The fd that holds the lock (the single process's seccomp filter
    /// allows ftruncate on it alone).
    public var descriptor: FileDescriptor { fd }

    /// Empties the file through the held fd and releases the lock: what a
    /// process under a seccomp filter (no unlink) can do at exit. An empty
    /// pid file is taken over by the next start without a word.
    public func vacate() {
        _ = ftruncate(fd.rawValue, 0)
        fd.close()
    }

    // MARK: Helpers

    public enum Content: Equatable { case empty, pid(Int32), garbage }

    /// Decimal pid, optional trailing newline; anything else is garbage.
    public static func parse(_ bytes: some Collection<UInt8>) -> Content {
        var digits = Array(bytes)
        if digits.last == UInt8(ascii: "\n") { digits.removeLast() }
        if bytes.isEmpty { return .empty }
        guard !digits.isEmpty, digits.count <= 10,
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let value = Int64(String(decoding: digits, as: UTF8.self)),
              value > 0, value <= Int64(Int32.max) else { return .garbage }
        return .pid(Int32(value))
    }

    private static func content(_ fd: FileDescriptor) -> Content {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 1) { buffer in
            let n = pread(fd.rawValue, buffer.baseAddress, buffer.count, 0)
            guard n >= 0 else { return .garbage }
            return parse(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    private static func readPid(_ fd: FileDescriptor) -> Int32? {
        if case let .pid(p) = content(fd) { return p }
        return nil
    }

    /// kill(pid, 0): success or EPERM (exists, someone else's) means alive.
    /// pid > 0 only: 0 and negatives address process groups.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }
}
