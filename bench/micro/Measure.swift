import Foundation
import Glibc

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

func fail(_ message: String) -> Never {
    printError("microbench: \(message)")
    exit(1)
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Runs `body` in batches for `seconds` (after a 0.3 s warm-up); ns per call.
func measure(_ seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    var batch = 256
    let warm = now()
    while now() - warm < 0.3 { for _ in 0..<batch { try body() } }
    var count = 0
    let start = now()
    var elapsed = 0.0
    repeat {
        for _ in 0..<batch { try body() }
        count += batch
        elapsed = now() - start
        if elapsed < 0.05 { batch *= 2 }
    } while elapsed < seconds
    return elapsed / Double(count) * 1e9
}

/// Payload MB/s (10^6 bytes) of one packet every `ns` nanoseconds.
func megabytesPerSecond(payload: Int, ns: Double) -> Double { Double(payload) / ns * 1e3 }

func padded(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
