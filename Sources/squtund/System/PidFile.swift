#if canImport(Glibc)
import Glibc
#endif

/// /run/squtun: created 0755 by root on first use (it is a tmpfs, empty
/// after boot). Non-root callers must name an existing directory.
enum RuntimeDirectory {
    static func ensure(forFile path: String) {
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
struct PidFile: Sendable {
    let path: String
    let pid: Int32
    /// What to log about a stale file that was replaced, if there was one.
    let note: String?
    private let fd: FileDescriptor

    /// Creates or takes over `path` for `pid`; `note` says if a stale file
    /// was replaced. Errors when another squtun for `interface` runs (lock
    /// held, or the file names a live process).
    static func acquire(path: String, interface: String, pid: Int32 = getpid()) throws(SystemError) -> PidFile {
        RuntimeDirectory.ensure(forFile: path)
        // A previous owner may unlink the file between our open and our
        // lock; then we locked a ghost, so open again (bounded).
        for _ in 0..<5 {
            let fd: FileDescriptor
            do throws(Errno) {
                fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_NOFOLLOW, mode: 0o644)
            } catch {
                throw .pidFileFailed(path: path, operation: "open", errno: error)
            }
            var st = stat()
            guard fstat(fd.rawValue, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                fd.close()
                throw .pidFileFailed(path: path, operation: "not a regular file", errno: Errno(EINVAL))
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
                continue
            }
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
            return PidFile(path: path, pid: pid, note: note, fd: fd)
        }
        throw .pidFileBusy(interface: interface, path: path)
    }

    /// Unlinks the file if it still is ours (same inode, our pid in it),
    /// then releases the lock. Returns whether it unlinked.
    @discardableResult
    func remove() -> Bool {
        defer { fd.close() }
        var mine = stat(), there = stat()
        guard case .pid(pid) = Self.content(fd),
              fstat(fd.rawValue, &mine) == 0, lstat(path, &there) == 0,
              mine.st_dev == there.st_dev, mine.st_ino == there.st_ino else { return false }
        return unlink(path) == 0
    }

    /// The fd that holds the lock (the single process's seccomp filter
    /// allows ftruncate on it alone).
    var descriptor: FileDescriptor { fd }

    /// Empties the file through the held fd and releases the lock: what a
    /// process under a seccomp filter (no unlink) can do at exit. An empty
    /// pid file is taken over by the next start without a word.
    func vacate() {
        _ = ftruncate(fd.rawValue, 0)
        fd.close()
    }

    // MARK: Helpers

    enum Content: Equatable { case empty, pid(Int32), garbage }

    /// Decimal pid, optional trailing newline; anything else is garbage.
    static func parse(_ bytes: some Collection<UInt8>) -> Content {
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
    static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }
}
