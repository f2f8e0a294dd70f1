// squtun-swarm: many server-mode clients in one process, for bench/server.
// Not a test: it prints figures. Each simulated client is a real v2
// sender and receiver (the project's own sealer and opener, its key id
// from its identifier), with its own key and its own UDP port:
//
//   squtun-swarm keys DIR COUNT
//       writes COUNT pre-shared key files client0001... into DIR (made
//       0700 if missing), each mode 0600: the server's peers directory.
//   squtun-swarm run --peers DIR --count N --server ADDR:PORT --bind ADDR
//                    [--per-second R] [--retry-ms MS] [--keepalive S] [--idle S]
//                    [--connect-timeout S] [--cipher NAME]
//       connects the N clients, all at once or R a second (each: a
//       keepalive, then echo requests inside the tunnel until one is
//       answered), pings each once more for the
//       round-trip times, then idles, each client sending a keepalive
//       every --keepalive seconds, until SIGTERM/SIGINT or --idle
//       seconds. Figures on stdout as "name: value" lines.
import Glibc

do {
    switch try Options.parse(Array(CommandLine.arguments.dropFirst())) {
    case let .keys(directory, count):
        try KeyWriter.write(count: count, into: directory)
        emit("wrote \(count) key files into \(directory)")
    case .run(let options):
        try runSwarm(options)
    }
} catch SwarmError.usage(let why) {
    complain("squtun-swarm: \(why)\n\(Options.usage)")
    exit(2)
} catch {
    complain("squtun-swarm: \(error)")
    exit(1)
}

/// A line on stdout, flushed at once: bench/server reads it while we run.
func emit(_ line: String) {
    print(line)
    fflush(nil)
}

/// A line on stderr.
func complain(_ line: String) {
    let text = Array((line + "\n").utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
