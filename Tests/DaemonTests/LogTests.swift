import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

final class LogTests: XCTestCase {
    func testSanitizeEscapesControlsAndBidi() {
        XCTAssertEqual(Sanitize.line("peer is 198.51.100.2:3457 — ok ü"), "peer is 198.51.100.2:3457 — ok ü")
        XCTAssertEqual(Sanitize.line("a\u{1b}]0;x\u{07}b\r\nc\u{7f}\u{9b}d\t"), "a\\x1b]0;x\\x07b\\x0d\\x0ac\\x7f\\u{9b}d\\x09")
        XCTAssertEqual(Sanitize.line("\u{202e}evil\u{2066}\u{2069}\u{200f}\u{061c}\u{2028}"),
                       "\\u{202e}evil\\u{2066}\\u{2069}\\u{200f}\\u{61c}\\u{2028}")
        XCTAssertEqual(Sanitize.text("a: 1\nb: \u{1b}[2J\n"), "a: 1\nb: \\x1b[2J\n")
    }

    func testLimiterCollapsesRepeatsAndBoundsTheRate() {
        var limiter = LogLimiter()
        XCTAssertEqual(limiter.admit("same", nowMs: 0), .send(repeated: 0))
        for _ in 0..<5 { XCTAssertEqual(limiter.admit("same", nowMs: 1), .repeated) }
        XCTAssertEqual(limiter.admit("other", nowMs: 2), .send(repeated: 5))
        // After the window the same line goes out again, with its count.
        XCTAssertEqual(limiter.admit("other", nowMs: 3), .repeated)
        XCTAssertEqual(limiter.admit("other", nowMs: 3 + LogLimiter.repeatWindowMs), .send(repeated: 1))
        // A flood of distinct lines: the burst, then the refill rate.
        var flood = LogLimiter()
        var sent = 0
        for i in 0..<1000 where flood.admit("line \(i)", nowMs: 100) != .drop(repeats: 0) { sent += 1 }
        XCTAssertEqual(sent, Int(LogLimiter.burst))
        sent = 0
        for i in 0..<1000 where flood.admit("later \(i)", nowMs: 100 + 2000) != .drop(repeats: 0) { sent += 1 }
        XCTAssertEqual(sent, Int(2 * LogLimiter.perSecond))
    }

    /// The worker's log sink never blocks: with nobody reading the channel,
    /// lines are lost and counted, and the call returns.
    func testChannelSinkDoesNotBlockAndCountsLoss() throws {
        let pair = try Channel.makePair()
        let helper = pair.helper, worker = pair.worker
        let saved = Log.sink
        defer { Log.sink = saved }
        Log.sink = .channel(worker.logPort)
        let before = Log.droppedLines
        // The limiter is off here (only forDataPath turns it on): every
        // line reaches the socket until its buffer is full.
        fillUntilALineIsLost()
        Log.info("one more")
        XCTAssertEqual(Log.droppedLines, before + 2)
        // What did go through is intact.
        XCTAssertEqual(try helper.receive(from: .worker), .log(level: .info, text: "line 0"))
        // The sink only borrows the worker's end: it must stay open until here.
        withExtendedLifetime(worker) {}
    }

    /// The single process's syslog: a datagram per line, in syslog(3)'s
    /// format, sanitized, and never blocking (a full socket loses lines).
    func testSyslogSocketSendsSanitizedLinesWithoutBlocking() throws {
        let dir = TestSupport.makeTemporaryDirectory()
        defer { TestSupport.removeTree(dir) }
        let path = dir + "/log"
        let server = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(server) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { dst in
            for (i, byte) in path.utf8.enumerated() { dst[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        let syslog = try XCTUnwrap(SyslogSocket.open(ident: "squtun-test", path: path))
        defer { syslog.fd.close() }
        let saved = Log.sink
        defer { Log.sink = saved }
        Log.sink = .syslogSocket(syslog)
        Log.notice("hello \u{1b}[2J")
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(server, &buffer, buffer.count, 0)
        XCTAssertEqual(String(decoding: buffer[0..<max(n, 0)], as: UTF8.self), "<29>squtun-test[\(getpid())]: hello \\x1b[2J")
        // Nobody reads: the call still returns, and the loss is counted.
        fillUntilALineIsLost()
    }

    /// Logs "line 0", "line 1", … until the sink loses one (at most 100 000).
    private func fillUntilALineIsLost(file: StaticString = #filePath, line: UInt = #line) {
        let before = Log.droppedLines
        var written = 0
        while Log.droppedLines == before && written < 100_000 {
            Log.info("line \(written)")
            written += 1
        }
        XCTAssertGreaterThan(Log.droppedLines, before, "never filled after \(written) lines", file: file, line: line)
    }
}
