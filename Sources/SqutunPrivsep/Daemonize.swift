import Shared
import SqutunSystem
import Glibc

/// Daemon mode (no -f), as SquTUN: the command returns to the shell (so an
/// ifupdown `up` line finishes) — but only once the tunnel is up, or with
/// the one-line reason it is not. The process the user started forks and
/// waits on a pipe for the daemon's verdict.
package struct Daemonize {
    private let report: FileDescriptor

    /// Forks. The parent waits for the verdict and exits with it (never
    /// returns); the child returns, detached (new session, cwd /, stdio on
    /// /dev/null), with syslog for its log.
    package static func detach() throws(SystemError) -> Daemonize {
        // Close-on-exec: the worker must not hold the write end (the parent waits for EOF).
        let pipe: (read: FileDescriptor, write: FileDescriptor)
        do throws(Errno) {
            pipe = try FileDescriptor.makePipe()
        } catch {
            throw .socketFailed(what: "the startup pipe", operation: "pipe2", errno: error)
        }
        let pid = fork()
        if pid < 0 { throw .socketFailed(what: "the daemon", operation: "fork", errno: .current) }
        if pid > 0 {
            pipe.write.close()
            exit(waitForVerdict(pipe.read))
        }
        pipe.read.close()
        setsid()
        _ = chdir("/")
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for fd in Int32(0)...2 { dup2(null, fd) }
            if null > 2 { close(null) }
        }
        Log.useSyslog(ident: "squtun")
        return Daemonize(report: pipe.write)
    }

    /// The tunnel is up: the starting command exits 0.
    package func succeed() {
        write("0")
        report.close()
    }

    /// Startup failed: the starting command prints `message` and exits 1.
    package func fail(_ message: String) {
        write("1" + message)
        report.close()
    }

    private func write(_ text: String) {
        try? report.writeAll(text)
    }

    private static func waitForVerdict(_ fd: FileDescriptor) -> Int32 {
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            let n = chunk.withUnsafeMutableBytes { ((try? fd.read(into: $0)) ?? nil) ?? 0 }
            if n <= 0 { break }
            text += chunk[0..<n]
        }
        guard let first = text.first else {
            Log.error("the daemon died during startup (see syslog)")
            return 1
        }
        if first == UInt8(ascii: "0") { return 0 }
        Log.error(String(decoding: text.dropFirst(), as: UTF8.self))
        return 1
    }
}
