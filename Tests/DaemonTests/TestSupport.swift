import XCTest
import CShim
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// Helpers for tests that use real kernel objects. Everything a test makes
/// is named uniquely (pid + counter) and removed by name in tearDown.
enum TestSupport {
    nonisolated(unsafe) private static var counter = 0

    /// A unique short name (≤ 15 bytes): prefix + pid + counter.
    static func uniqueName(_ prefix: String) -> String {
        counter += 1
        return "\(prefix)\(getpid() % 100_000)\(counter)"
    }

    /// Runs a program (no shell) with `arguments`, returns exit status and
    /// combined stdout+stderr.
    @discardableResult
    static func run(_ path: String, _ arguments: [String], environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        -> (status: Spawn.ChildStatus?, output: String)
    {
        guard let pipe = try? FileDescriptor.makePipe() else { return (nil, "pipe failed") }
        let pid: pid_t
        do {
            pid = try Spawn.spawn(path: path, arguments: [path] + arguments, environment: environment,
                                  fileMap: [(pipe.write, 1), (pipe.write, 2)])
        } catch {
            pipe.read.close(); pipe.write.close()
            return (nil, "\(error)")
        }
        pipe.write.close()
        let output = readAll(pipe.read)
        pipe.read.close()
        return ((try? Spawn.wait(pid)) ?? nil, output)
    }

    @discardableResult
    static func ip(_ arguments: String...) -> (status: Spawn.ChildStatus?, output: String) {
        run("/usr/sbin/ip", arguments)
    }

    static func readAll(_ fd: FileDescriptor) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// One line (without its newline) from a blocking fd, read byte by byte.
    static func readLine(_ fd: FileDescriptor) -> String {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(fd.rawValue, &byte, 1) == 1 && byte != UInt8(ascii: "\n") { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A fresh directory under /tmp (mode 0700 until changed).
    static func makeTemporaryDirectory() -> String {
        var template = Array("/tmp/squtun-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        return String(cString: template)
    }

    /// rm -rf of a directory this test made (only under /tmp/squtun-test-).
    static func removeTree(_ path: String) {
        guard path.hasPrefix("/tmp/squtun-test-") else { return }
        run("/bin/rm", ["-rf", "--", path])
    }

    static func interfaceExists(_ name: String) -> Bool { if_nametoindex(name) != 0 }

    /// A pid no process can have: pids stay below pid_max, at most 2^22.
    static let deadPid: Int32 = 4_194_304
}

/// Runs a scenario of `ChildScenarios` in a fresh copy of this test binary
/// (posix_spawn of /proc/self/exe, never fork), so that chroot, setuid and
/// seccomp never touch the test process itself.
enum ChildProcess {
    static let scenarioVariable = "SQUTUN_TEST_CHILD"

    static func run(_ scenario: String, environment extra: [String] = [],
                    fileMap extraFiles: [(source: FileDescriptor, target: Int32)] = [])
        -> (status: Spawn.ChildStatus?, output: String)
    {
        guard let pipe = try? FileDescriptor.makePipe() else { return (nil, "pipe failed") }
        let environment = ["\(scenarioVariable)=\(scenario)"] + Spawn.workerEnvironment + extra
        let pid: pid_t
        do {
            pid = try Spawn.spawn(path: "/proc/self/exe",
                                  arguments: ["squtun-test-child", "DaemonTests.ChildEntry/testChildEntry"],
                                  environment: environment,
                                  fileMap: [(pipe.write, 1), (pipe.write, 2)] + extraFiles)
        } catch {
            pipe.read.close(); pipe.write.close()
            return (nil, "\(error)")
        }
        pipe.write.close()
        let output = TestSupport.readAll(pipe.read)
        pipe.read.close()
        return ((try? Spawn.wait(pid)) ?? nil, output)
    }
}

/// What the tests inspect of a descriptor (the daemon sets these flags at
/// birth, O_CLOEXEC / O_NONBLOCK, and never reads them back).
extension FileDescriptor {
    var isNonBlocking: Bool { (fcntl(rawValue, F_GETFL) & O_NONBLOCK) != 0 }

    var isCloseOnExec: Bool { (fcntl(rawValue, F_GETFD) & FD_CLOEXEC) != 0 }

    /// Nothing open behind the number: F_GETFD fails with EBADF.
    var isClosed: Bool { fcntl(rawValue, F_GETFD) == -1 && errno == EBADF }

    func setCloseOnExec(_ on: Bool) throws(Errno) {
        let flags = try retryingEINTR { fcntl(rawValue, F_GETFD) }
        let wanted = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC
        if wanted != flags { _ = try retryingEINTR { fcntl(rawValue, F_SETFD, wanted) } }
    }
}
