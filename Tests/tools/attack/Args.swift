import Glibc

/// `--name value` and `--flag` options after the subcommand. No Foundation.
struct Args {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []
    private var used: Set<String> = []

    /// Options that take no value.
    static let flagNames: Set<String> = ["from-peer", "immediate", "tap", "other-mode"]

    init(_ argv: ArraySlice<String>) throws(AttackError) {
        var i = argv.startIndex
        while i < argv.endIndex {
            let a = argv[i]
            guard a.hasPrefix("--") else { throw .usage("unexpected argument '\(a)'") }
            let name = String(a.dropFirst(2))
            if Self.flagNames.contains(name) {
                flags.insert(name)
                i += 1
                continue
            }
            guard i + 1 < argv.endIndex else { throw .usage("--\(name) needs a value") }
            values[name] = argv[i + 1]
            i += 2
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    func string(_ name: String) throws(AttackError) -> String {
        guard let v = values[name] else { throw .usage("--\(name) is required") }
        return v
    }

    func string(_ name: String, default d: String) -> String { values[name] ?? d }

    func int(_ name: String) throws(AttackError) -> Int {
        let s = try string(name)
        guard let v = Int(s) else { throw .usage("--\(name): '\(s)' is not an integer") }
        return v
    }

    func int(_ name: String, default d: Int) throws(AttackError) -> Int {
        values[name] == nil ? d : try int(name)
    }

    func uint64(_ name: String) throws(AttackError) -> UInt64 {
        let s = try string(name)
        guard let v = UInt64(s) else { throw .usage("--\(name): '\(s)' is not an unsigned integer") }
        return v
    }

    /// A session id given as a number, or "none".
    func optionalSession(_ name: String) throws(AttackError) -> UInt64? {
        let s = try string(name)
        if s == "none" { return nil }
        guard let v = UInt64(s) else { throw .usage("--\(name): '\(s)' is not a session id") }
        return v
    }

    func double(_ name: String, default d: Double) throws(AttackError) -> Double {
        guard let s = values[name] else { return d }
        guard let v = Double(s) else { throw .usage("--\(name): '\(s)' is not a number") }
        return v
    }

    func endpoint(_ name: String) throws(AttackError) -> Endpoint {
        let s = try string(name)
        guard let e = Endpoint(parsing: s) else { throw .usage("--\(name): '\(s)' is not IPv4:PORT") }
        return e
    }
}

enum AttackError: Error {
    case usage(String)
    case system(String)

    var message: String {
        switch self {
        case .usage(let m): "usage: \(m)"
        case .system(let m): m
        }
    }
}

/// The text of the current errno.
func errnoText() -> String { String(cString: strerror(errno)) }

/// Writes a line to stdout without Foundation; flushes at once (the suite
/// reads these lines from files while the tool may still run).
func say(_ line: String) {
    var s = line
    s += "\n"
    s.withUTF8 { b in
        var done = 0
        while done < b.count {
            let n = write(1, b.baseAddress! + done, b.count - done)
            if n <= 0 { if errno == EINTR { continue }; return }
            done += n
        }
    }
}

func warn(_ line: String) {
    var s = "squtun-attack: " + line + "\n"
    s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// CLOCK_MONOTONIC in seconds.
func monoSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func sleepSeconds(_ s: Double) {
    guard s > 0 else { return }
    var ts = timespec(tv_sec: Int(s), tv_nsec: Int((s - Double(Int(s))) * 1e9))
    var rest = timespec()
    while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
}

/// Keeps a sender at no more than `rate` datagrams per second on average
/// (checked every few datagrams; bursts are at most `burst` long).
struct Pacer {
    let rate: Double
    let start = monoSeconds()
    private var count = 0
    private let burst: Int

    init(rate: Double, burst: Int = 16) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    mutating func tick() {
        count += 1
        guard rate > 0, count % burst == 0 else { return }
        let due = start + Double(count) / rate
        let now = monoSeconds()
        if due > now { sleepSeconds(due - now) }
    }

    var elapsed: Double { monoSeconds() - start }
}

/// `x` with two decimals.
func fixed2(_ x: Double) -> String {
    let c = Int((x * 100).rounded())
    let f = c % 100
    return "\(c / 100)." + (f < 10 ? "0" : "") + "\(f)"
}
