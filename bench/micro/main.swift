// squtun-microbench: seal/open cost per packet of each cipher suite against
// `openssl speed` for the same work. Not a test. Run in release:
//   swift run -c release --scratch-path .build-crypto squtun-microbench [options] [payload-bytes ...]
// or, for instruction counts under valgrind (see bench/callgrind):
//   squtun-microbench --count N --only seal|open [--cipher NAME] [payload-bytes]
import Foundation
import Glibc
import Shared
import squtun_crypto

let defaultPayloads = [1400, 64]
/// squtun's time against openssl's for the same work; below it the summary flags the row.
let targetPercent = 90.0

@MainActor func usage() -> Never {
    printError("""
        usage: squtun-microbench [--cipher NAME[,NAME...]] [--seconds S] [--no-forged] [payload-bytes ...]
               squtun-microbench --count N --only seal|open [--cipher NAME] [payload-bytes]
        suites: \(suiteEntries.map(\.name).joined(separator: ", ")) (default: all); \
        payloads default: \(defaultPayloads.map(String.init).joined(separator: " "))
        """)
    exit(2)
}

// `--count N --only seal|open`: exactly N operations and nothing else (no
// clock, no warm-up, no openssl speed), so that the instruction count under
// `valgrind --tool=callgrind` is a function of N alone: bench/callgrind runs
// N and 2N and divides the difference by N. Without them: the timed
// comparison.
var count: Int?, only: String?, seconds = 2.0, forged = true
var cipherNames: [String] = []
var payloads: [Int] = []
do {
    var args = CommandLine.arguments.dropFirst()
    while let arg = args.popFirst() {
        switch arg {
        case "--count": guard let n = args.popFirst().flatMap({ Int($0) }), n >= 0 else { usage() }; count = n
        case "--only": guard let o = args.popFirst(), o == "seal" || o == "open" else { usage() }; only = o
        case "--cipher":
            guard let v = args.popFirst() else { usage() }
            cipherNames += v.split(separator: ",").map(String.init)
        case "--seconds":
            guard let s = args.popFirst().flatMap({ Double($0) }), s >= 0.1, s <= 60 else { usage() }
            seconds = s
        case "--no-forged": forged = false
        default:
            guard let p = Int(arg), p >= 0 else { usage() }
            payloads.append(p)
        }
    }
}
let entries: [SuiteEntry] = cipherNames.isEmpty ? suiteEntries : cipherNames.map { name in
    if let e = suiteEntries.first(where: { $0.name == name }) { return e }
    if protocolSuiteNames.contains(name) {
        fail("\(name): not in this build's suite list yet (bench/micro/Suites.swift lists \(suiteEntries.map(\.name).joined(separator: ", ")))")
    }
    fail("unknown suite \(name) (known: \(protocolSuiteNames.joined(separator: ", ")))")
}

let algorithms: CryptoAlgorithms
do { algorithms = try CryptoAlgorithms() } catch { fail("setup: \(error)") }

switch (count, only) {
case let (count?, only?):
    // One suite: the one named, else the default (the first listed), which
    // is the one bench/callgrind's symbols belong to.
    guard cipherNames.count <= 1, payloads.count <= 1 else { usage() }
    do {
        try entries[0].counted(algorithms, payloads.first ?? 1400, count, only == "open")
    } catch { fail("\(only): \(error)") }
    exit(0)
case (nil, nil): break
default: usage()  // one without the other is a mistake, not a default
}

if payloads.isEmpty { payloads = defaultPayloads }
let speed = OpenSSLSpeed(seconds: max(1, Int((seconds * 1.5).rounded())))

struct SummaryRow {
    let suite: String
    let payload: Int
    let ours: SuiteTimes
    let reference: ReferenceTimes
}
var summary: [SummaryRow] = []

print("squtun-microbench: \(seconds) s per measurement; \(speed.version), `openssl speed -seconds \(speed.seconds) -elapsed`")
for entry in entries {
    for payload in payloads {
        let layout = entry.layout(payload)
        print("")
        print("\(entry.name), payload \(payload) B: datagram \(layout.packet) B (sealed payload \(layout.sealed) B, "
              + "\(layout.authenticated) B in front of the trailer)")
        let ours: SuiteTimes
        do { ours = try entry.timed(algorithms, payload, seconds) } catch { fail("\(entry.name): \(error)") }
        func row(_ name: String, _ ns: Double, _ note: String = "") {
            print("  " + padded(name, 10)
                  + String(format: " %9.1f ns/packet  %8.1f MB/s", ns, megabytesPerSecond(payload: payload, ns: ns))
                  + note)
        }
        print(" squtun:")
        row("seal", ours.seal)
        row("open", ours.open, String(format: "  (%.1f ns measured incl. a %.1f ns restoring copy)",
                                      ours.openGross, ours.copy))
        row("seal+open", ours.sealOpen)
        if forged && entry.forgedCosts {
            forgedCosts(algorithms: algorithms, payloadLength: payload, seconds: seconds)
        }
        let ref = speed.reference(entry.reference, payload: payload, sealed: layout.sealed,
                                  authenticated: layout.authenticated)
        print(" openssl speed:")
        ref.lines.forEach { print($0) }
        if !ref.asides.isEmpty {
            print("  for information, the cipher as one stream (no nonce, AAD or tag per operation):")
            ref.asides.forEach { print($0) }
        }
        if ref.streamOnly {
            print("  (this openssl has no -aead: the reference is the stream, without nonce, AAD or tag per packet: squtun's share comes out lower than against -aead)")
        }
        print(String(format: "  same work: seal %.1f ns, open %.1f ns; squtun at %.1f %% and %.1f %% of openssl's speed",
                     ref.seal, ref.open, ref.seal / ours.seal * 100, ref.open / ours.open * 100))
        summary.append(SummaryRow(suite: entry.name, payload: payload, ours: ours, reference: ref))
    }
}

// One table: payload MB/s of squtun and of openssl's same work, and the
// ratio (openssl's time / squtun's = squtun's speed as a share of openssl's).
print("")
print("Summary: payload MB/s; % = squtun's speed as a share of openssl speed's for the same work (target >= \(Int(targetPercent)) %)")
print("| suite | payload B | seal MB/s | openssl MB/s | seal % | open MB/s | openssl MB/s | open % |")
print("|---|---|---|---|---|---|---|---|")
var below = 0
for r in summary {
    func pct(_ ref: Double, _ ours: Double) -> String {
        let p = ref / ours * 100
        if p < targetPercent { below += 1 }
        return String(format: p < targetPercent ? "**%.1f**" : "%.1f", p)
    }
    let mb = { (ns: Double) in String(format: "%.1f", megabytesPerSecond(payload: r.payload, ns: ns)) }
    print("| \(r.suite) | \(r.payload) | \(mb(r.ours.seal)) | \(mb(r.reference.seal)) | \(pct(r.reference.seal, r.ours.seal)) "
          + "| \(mb(r.ours.open)) | \(mb(r.reference.open)) | \(pct(r.reference.open, r.ours.open)) |")
}
print(below == 0 ? "All at or above \(Int(targetPercent)) %."
      : "\(below) figure(s) below \(Int(targetPercent)) % (bold). On a busy machine, run again before reading much into it.")
