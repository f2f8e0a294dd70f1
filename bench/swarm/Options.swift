import Glibc
import Shared

/// What squtun-swarm was asked to do (main.swift has the usage).
enum Options {
    case keys(directory: String, count: Int)
    case run(RunOptions)

    static let usage = """
        usage: squtun-swarm keys DIR COUNT
               squtun-swarm run --peers DIR --count N --server ADDR:PORT --bind ADDR
                                [--per-second R] [--retry-ms MS] [--keepalive S] [--idle S]
                                [--connect-timeout S] [--cipher NAME]
        """

    static func parse(_ arguments: [String]) throws(SwarmError) -> Options {
        guard let verb = arguments.first else { throw .usage("no command") }
        let rest = Array(arguments.dropFirst())
        switch verb {
        case "keys":
            guard rest.count == 2, let count = Int(rest[1]), (1...9999).contains(count) else {
                throw .usage("keys DIR COUNT (COUNT 1...9999)")
            }
            return .keys(directory: rest[0], count: count)
        case "run":
            return .run(try RunOptions(rest))
        default:
            throw .usage("unknown command '\(verb)'")
        }
    }
}

struct RunOptions {
    var peers = ""
    var count = 0
    var server = sockaddr_in()
    var bind: UInt32 = 0
    /// An unanswered client sends its next echo request after this long.
    var retryMs: UInt64 = 1000
    var keepaliveMs: UInt64 = 25_000
    /// 0: idle until SIGTERM or SIGINT.
    var idleMs: UInt64 = 0
    var connectTimeoutMs: UInt64 = 300_000
    /// Clients starting a second in the connect phase; 0: all at once.
    var perSecond: UInt64 = 0
    var suite = SuiteID.defaultSuite

    init(_ arguments: [String]) throws(SwarmError) {
        var args = arguments[...]
        func value(_ option: String) throws(SwarmError) -> String {
            guard let v = args.popFirst() else { throw .usage("\(option) needs a value") }
            return v
        }
        func number(_ option: String, _ range: ClosedRange<UInt64>) throws(SwarmError) -> UInt64 {
            let text = try value(option)
            guard let n = UInt64(text), range.contains(n) else { throw .usage("\(option): '\(text)' is not in \(range)") }
            return n
        }
        var haveServer = false
        while let option = args.popFirst() {
            switch option {
            case "--peers": peers = try value(option)
            case "--count": count = Int(try number(option, 1...9999))
            case "--server":
                let text = try value(option)
                guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]),
                      let address = Self.address(String(text[..<colon])) else {
                    throw .usage("--server: '\(text)' is not ADDR:PORT (IPv4)")
                }
                server.sin_family = sa_family_t(AF_INET)
                server.sin_port = port.bigEndian
                server.sin_addr = in_addr(s_addr: address.bigEndian)
                haveServer = true
            case "--bind":
                let text = try value(option)
                guard let address = Self.address(text) else { throw .usage("--bind: '\(text)' is not an IPv4 address") }
                bind = address
            case "--retry-ms": retryMs = try number(option, 10...60_000)
            case "--keepalive": keepaliveMs = try number(option, 1...3600) * 1000
            case "--idle": idleMs = try number(option, 0...86_400) * 1000
            case "--per-second": perSecond = try number(option, 0...100_000)
            case "--connect-timeout": connectTimeoutMs = try number(option, 1...3600) * 1000
            case "--cipher":
                let name = try value(option)
                guard let s = SuiteID(name: name) else { throw .usage("--cipher: unknown suite '\(name)'") }
                suite = s
            default: throw .usage("unknown option '\(option)'")
            }
        }
        guard !peers.isEmpty, count > 0, haveServer, bind != 0 else {
            throw .usage("run needs --peers, --count, --server and --bind")
        }
    }

    /// A dotted IPv4 address in host byte order.
    static func address(_ text: String) -> UInt32? {
        var a = in_addr()
        guard inet_pton(AF_INET, text, &a) == 1 else { return nil }
        return UInt32(bigEndian: a.s_addr)
    }
}

/// Client i's identifier (1-based): client0001, client0002, ...
func clientName(_ i: Int) -> String {
    let digits = String(i)
    return "client" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

/// Client i's tunnel addresses as bench/server's hook gives them: the
/// server's side of its tun 10.(100 + i/250).(i%250).1, the client's .2.
func innerAddresses(_ i: Int) -> (server: UInt32, client: UInt32) {
    let net = UInt32(10) << 24 | UInt32(100 + i / 250) << 16 | UInt32(i % 250) << 8
    return (net | 1, net | 2)
}
