// What every fuzz target's checks share. A failed check aborts, so
// libFuzzer saves the input as a crash; SQUTUN_FUZZ_VERBOSE=1 makes a
// target narrate what an input did (to study one input).
#if canImport(Glibc)
import Glibc
#endif

/// The target's name for messages: the executable's (fuzz-packet, …).
private let targetName: String = {
    let path = CommandLine.arguments.first ?? "fuzz"
    return path.split(separator: "/").last.map(String.init) ?? path
}()

private let verbose = getenv("SQUTUN_FUZZ_VERBOSE") != nil

/// Ends the run: the input broke an oracle.
public func fail(_ message: String) -> Never {
    let text = "\(targetName): ORACLE FAILED: \(message)\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    abort()
}

/// With SQUTUN_FUZZ_VERBOSE=1: one line about this input.
public func note(_ text: @autoclosure () -> String) {
    guard verbose else { return }
    let line = text() + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

public func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fail(message()) }
}
