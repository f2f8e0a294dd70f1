import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

final class SpawnTests: XCTestCase {
    /// The worker contract, checked by a spawned copy of this binary: fd 3
    /// is the channel, the environment is exactly ours, the signal mask is
    /// empty and dispositions are default, though the parent blocks SIGUSR2
    /// and ignores SIGPIPE while spawning.
    func testWorkerContract() throws {
        let pair = try Channel.makePair()
        let helper = pair.helper, worker = pair.worker
        var block = sigset_t(), old = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGUSR2)
        XCTAssertEqual(pthread_sigmask(SIG_BLOCK, &block, &old), 0)
        let oldPipe = signal(SIGPIPE, SIG_IGN)
        let pipe = try FileDescriptor.makePipe()
        let pid: pid_t
        do {
            defer {
                signal(SIGPIPE, oldPipe)
                pthread_sigmask(SIG_SETMASK, &old, nil)
            }
            pid = try Spawn.spawn(path: Spawn.workerPath,
                                  arguments: ["squtun-test-child", "DaemonTests.ChildEntry/testChildEntry"],
                                  environment: ["\(ChildProcess.scenarioVariable)=spawn-contract"] + Spawn.workerEnvironment,
                                  fileMap: [(worker.fd, 3), (pipe.write, 1), (pipe.write, 2)])
        }
        worker.close()
        pipe.write.close()
        try helper.send(.config(ChannelTests.sampleConfig))
        let reply = try helper.receive(from: .worker)
        let output = TestSupport.readAll(pipe.read)
        pipe.read.close()
        XCTAssertEqual(reply, .log(level: .info, text: "interface=tun0"), output)
        XCTAssertEqual(try Spawn.wait(pid), .exited(0), output)
    }

    func testWorkerDefaults() {
        XCTAssertEqual(Spawn.workerPath, "/proc/self/exe")
        XCTAssertEqual(Spawn.workerArguments, ["squtun-worker", "--worker"])
        XCTAssertEqual(Spawn.workerEnvironment, ["SWIFT_BACKTRACE=enable=no", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        XCTAssertEqual(Channel.workerFD.rawValue, 3)
    }

    func testExitStatusesAreDecoded() {
        XCTAssertEqual(TestSupport.run("/bin/sh", ["-c", "exit 3"]).status, .exited(3))
        XCTAssertEqual(TestSupport.run("/bin/sh", ["-c", "kill -9 $$"]).status, .signaled(SIGKILL))
        XCTAssertEqual(Spawn.ChildStatus(waitStatus: 0x7f | (19 << 8)), nil, "stopped is not ended")
        XCTAssertTrue(Spawn.ChildStatus.signaled(SIGSYS).description.contains("seccomp"))
    }

    func testMissingProgram() {
        XCTAssertThrowsError(try Spawn.spawn(path: "/nonexistent/sqt", arguments: ["x"], environment: [], fileMap: [])) { error in
            XCTAssertEqual(error as? SystemError, .spawnFailed(path: "/nonexistent/sqt", errno: Errno(ENOENT)))
        }
    }

    /// A source already at its target number must still arrive (dup2 onto
    /// itself would keep close-on-exec), and unmapped fds must not.
    func testFileMapping() throws {
        let pipe = try FileDescriptor.makePipe()
        let high = try pipe.write.duplicate(atLeast: 200)
        let unmapped = try pipe.write.duplicate(atLeast: 300)
        XCTAssertTrue(high.isCloseOnExec)
        let script = "echo mapped >&\(high.rawValue); echo leak >&\(unmapped.rawValue) 2>/dev/null; exit 0"
        let pid = try Spawn.spawn(path: "/bin/bash", arguments: ["bash", "-c", script], environment: [],
                                  fileMap: [(high, high.rawValue)])
        [pipe.write, high, unmapped].forEach { $0.close() }
        let output = TestSupport.readAll(pipe.read)
        pipe.read.close()
        XCTAssertEqual(try Spawn.wait(pid), .exited(0))
        XCTAssertEqual(output, "mapped\n")
    }

    /// The caller's descriptors never reach the child, close-on-exec or
    /// not (`squtun … 7</etc/shadow`), and 0-2 that the map does not name
    /// are /dev/null, not the caller's terminal or journal stream.
    func testInheritedDescriptorsAreClosedAndStdioIsNull() throws {
        let pipe = try FileDescriptor.makePipe()
        let mapped = try pipe.write.duplicate(atLeast: 200)
        let inherited = try pipe.write.duplicate(atLeast: 300)
        try inherited.setCloseOnExec(false)
        let script = """
            echo leak >&\(inherited.rawValue) 2>/dev/null
            for fd in 0 1 2; do echo "$fd=$(readlink /proc/$$/fd/$fd)" >&\(mapped.rawValue); done
            [ -e /proc/$$/fd/\(inherited.rawValue) ] && echo "fd \(inherited.rawValue) is open" >&\(mapped.rawValue)
            exit 0
            """
        let pid = try Spawn.spawn(path: "/bin/bash", arguments: ["bash", "-c", script], environment: [],
                                  fileMap: [(mapped, mapped.rawValue)])
        [pipe.write, mapped, inherited].forEach { $0.close() }
        let output = TestSupport.readAll(pipe.read)
        pipe.read.close()
        XCTAssertEqual(try Spawn.wait(pid), .exited(0))
        XCTAssertFalse(output.contains("leak"), output)
        XCTAssertEqual(output, "0=/dev/null\n1=/dev/null\n2=/dev/null\n")
    }
}
