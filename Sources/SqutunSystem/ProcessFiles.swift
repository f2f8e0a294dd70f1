#if canImport(Glibc)
import Glibc
#endif

/// What /proc says about a process's open files: the root helper checks
/// with it what the worker says it closed.
public enum ProcessFiles {
    /// The inode of the socket `fd` is (nil if fstat fails).
    public static func socketInode(_ fd: FileDescriptor) -> UInt64? {
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { return nil }
        return UInt64(st.st_ino)
    }

    /// Whether process `pid` holds a descriptor on the socket with inode
    /// `inode` (a /proc/PID/fd link reads "socket:[INODE]"). False if the
    /// process is gone. Reading another user's process needs root.
    public static func holdsSocket(pid: pid_t, inode: UInt64) -> Bool {
        let directory = "/proc/\(pid)/fd"
        guard let dir = opendir(directory) else { return false }
        defer { closedir(dir) }
        let wanted = Array("socket:[\(inode)]".utf8)
        var link = [UInt8](repeating: 0, count: 64)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard name.first != "." else { continue }
            let n = link.withUnsafeMutableBufferPointer { buffer in
                buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    readlink(directory + "/" + name, $0, buffer.count)
                }
            }
            if n == wanted.count, Array(link[0..<n]) == wanted { return true }
        }
        return false
    }
}
