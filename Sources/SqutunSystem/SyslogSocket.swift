import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket connected to /dev/log, opened before the seccomp
/// filter, for a process whose filter allows neither `socket` nor
/// `connect` (the single process): glibc's syslog(3) would reconnect after
/// a failed send, and that reconnection would be a filter kill. Lines go
/// out without blocking in the format syslog(3) uses ("<PRI>IDENT[PID]:
/// TEXT", no timestamp: the syslog daemon adds its own); a line the daemon
/// does not take (gone, restarted, busy) is lost and counted by `Log`.
public struct SyslogSocket: Sendable {
    public let fd: FileDescriptor
    public let prefix: String

    public static let path = "/dev/log"

    /// nil if there is no syslog daemon to connect to (`path`: tests).
    public static func open(ident: String, path: String = SyslogSocket.path) -> SyslogSocket? {
        let raw = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard raw >= 0 else { return nil }
        guard ControlSocket.withAddress(path, { connect(raw, $0, $1) }) == 0 else {
            FileDescriptor(rawValue: raw).close()
            return nil
        }
        return SyslogSocket(fd: FileDescriptor(rawValue: raw), prefix: "\(ident)[\(getpid())]: ")
    }

    /// One line at `level`, facility daemon. False if lost.
    public func send(level: Int32, _ line: String, facility: Int32 = LOG_DAEMON) -> Bool {
        var datagram = "<\(facility | (level & 7))>" + prefix + line
        return datagram.withUTF8 { bytes in
            Glibc.send(fd.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) == bytes.count
        }
    }
}
