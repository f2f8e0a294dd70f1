// squtun-microbench: seal/open cost per packet against `openssl speed` for
// the same work. Not a test. Run in release:
//   swift run -c release --scratch-path .build-crypto squtun-microbench [payload-bytes]
// or, for instruction counts under valgrind (see bench/callgrind):
//   squtun-microbench --count N --only seal|open [payload-bytes]
import Foundation
import Glibc
import Shared
import squtun_crypto

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

func usage() -> Never {
    printError("usage: squtun-microbench [--count N --only seal|open] [payload-bytes 0...\(Wire.maxPayloadLength)]")
    exit(2)
}

// `--count N --only seal|open`: exactly N operations and nothing else (no
// clock, no warm-up, no openssl speed), so that the instruction count under
// `valgrind --tool=callgrind` is a function of N alone: bench/callgrind runs
// N and 2N and divides the difference by N. Without them: the timed
// comparison, as before.
var countOnly: (count: Int, open: Bool)?
var payloadArgument: String?
do {
    var count: Int?, only: String?
    var args = CommandLine.arguments.dropFirst()
    while let arg = args.popFirst() {
        switch arg {
        case "--count": guard let n = args.popFirst().flatMap({ Int($0) }), n >= 0 else { usage() }; count = n
        case "--only": guard let o = args.popFirst(), o == "seal" || o == "open" else { usage() }; only = o
        default: guard payloadArgument == nil else { usage() }; payloadArgument = arg
        }
    }
    switch (count, only) {
    case let (count?, only?): countOnly = (count, only == "open")
    case (nil, nil): break
    default: usage()  // one without the other is a mistake, not a default
    }
}
let payloadLength = payloadArgument.map { Int($0) ?? -1 } ?? 1400
guard (0...Wire.maxPayloadLength).contains(payloadLength) else { usage() }
let padded = Wire.paddedLength(payloadLength)
let packetLength = Wire.packetLength(payload: payloadLength)
let macInput = packetLength - Wire.macLength  // header + IV + ciphertext
let measureSeconds = 2.0

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

func fail(_ message: String) -> Never {
    printError("microbench: \(message)")
    exit(1)
}

// Setup: one session, a sender and a receiver as in the daemon.
let algorithms: CryptoAlgorithms
let sender: PacketCipher
let receiver: PacketCipher
do {
    algorithms = try CryptoAlgorithms()
    let psk = SecretBytes(count: Wire.pskLength)
    try psk.withUnsafeMutableBytes { try randomBytes($0) }
    let keys = try SessionKeys(algorithms: algorithms, psk: psk, session: 0x5eed)
    sender = try PacketCipher(algorithms: algorithms)
    receiver = try PacketCipher(algorithms: algorithms)
    try sender.setKeys(keys)
    try receiver.setKeys(keys)
} catch { fail("setup: \(error)") }

let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: packetLength, alignment: 64)
let master = UnsafeMutableRawBufferPointer.allocate(byteCount: packetLength, alignment: 64)
for i in 0..<packetLength { buffer[i] = UInt8(truncatingIfNeeded: i &* 7) }
var header = Header(type: payloadLength == 0 ? .keepalive : .data, session: 0x5eed, counter: 0, timestampMs: 1)

// Sanity: a sealed packet opens.
do {
    _ = try sender.seal(header: header, payloadLength: payloadLength, packet: master)
    buffer.copyMemory(from: UnsafeRawBufferPointer(master))
    guard receiver.verify(UnsafeRawBufferPointer(buffer)), receiver.decrypt(buffer) == payloadLength else {
        fail("sealed packet does not open")
    }
} catch { fail("seal: \(error)") }

// The loops the timed mode measures, minus the timing. Opening decrypts in
// place, so each round restores the datagram first, as below; callgrind
// counts only inside seal/verify/decrypt (--toggle-collect), so the copy is
// not in the figure. Nothing is allocated in either loop.
if let (count, open) = countOnly {
    var failures = 0
    if open {
        for _ in 0..<count {
            buffer.copyMemory(from: UnsafeRawBufferPointer(master))
            if !receiver.verify(UnsafeRawBufferPointer(buffer)) || receiver.decrypt(buffer) == nil { failures += 1 }
        }
    } else {
        do {
            for _ in 0..<count {
                header.counter &+= 1
                _ = try sender.seal(header: header, payloadLength: payloadLength, packet: buffer)
            }
        } catch { fail("seal: \(error)") }
    }
    if failures > 0 { fail("\(failures) opens failed") }
    exit(0)
}

print("squtun-microbench: payload \(payloadLength) B, datagram \(packetLength) B (CBC \(padded) B, HMAC over \(macInput) B); \(measureSeconds) s per measurement")

let sealNs = try measure(measureSeconds) {
    header.counter &+= 1
    _ = try sender.seal(header: header, payloadLength: payloadLength, packet: buffer)
}
// Opening decrypts in place, so each round restores the datagram first; that
// copy is measured alone and subtracted.
let copyNs = measure(measureSeconds / 4) {
    buffer.copyMemory(from: UnsafeRawBufferPointer(master))
}
var openFailures = 0
let openGrossNs = measure(measureSeconds) {
    buffer.copyMemory(from: UnsafeRawBufferPointer(master))
    if !receiver.verify(UnsafeRawBufferPointer(buffer)) || receiver.decrypt(buffer) == nil { openFailures += 1 }
}
if openFailures > 0 { fail("\(openFailures) opens failed") }
let openNs = openGrossNs - copyNs
var roundFailures = 0
let bothGrossNs = try measure(measureSeconds) {
    header.counter &+= 1
    let n = try sender.seal(header: header, payloadLength: payloadLength, packet: buffer)
    let p = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
    if !receiver.verify(UnsafeRawBufferPointer(p)) || receiver.decrypt(p) == nil { roundFailures += 1 }
}
if roundFailures > 0 { fail("\(roundFailures) round trips failed") }

func mbps(_ ns: Double) -> Double { Double(payloadLength) / ns * 1e3 }  // payload MB/s (10^6 B)
func pad(_ s: String) -> String { s.count >= 10 ? s : s + String(repeating: " ", count: 10 - s.count) }
func row(_ name: String, _ ns: Double, _ note: String = "") {
    print("  " + pad(name) + String(format: " %9.1f ns/packet  %8.1f MB/s", ns, mbps(ns)) + note)
}
print("squtun:")
row("seal", sealNs)
row("open", openNs, String(format: "  (%.1f ns measured incl. a %.1f ns restoring copy)", openGrossNs, copyNs))
row("seal+open", bothGrossNs)

// What an unauthenticated datagram costs the receiver (PROTOCOL.md §6,
// check 4), through Opener as the daemon calls it: one that fails the MAC
// of the peer's current session, one naming a session never seen (a key
// derivation each: the MAC key only) from the peer's address, and the same
// from elsewhere once the derivation budget is spent (refused unverified).
// The forged datagrams have the length of this run's datagram.
@MainActor func openAt(_ o: Opener, _ p: UnsafeMutableRawBufferPointer, fromPeer: Bool, ms: UInt64) -> OpenOutcome {
    o.open(p, fromPeer: fromPeer, nowMs: ms, monotonicMs: ms)
}
let opener: Opener
let peerSession: UInt64 = 0x5eed
do {
    let psk = SecretBytes(count: Wire.pskLength)
    try psk.withUnsafeMutableBytes { try randomBytes($0) }
    opener = try Opener(algorithms: algorithms, psk: psk, ownSession: 1, startMs: 0, skewSeconds: 0)
    let keys = try SessionKeys(algorithms: algorithms, psk: psk, session: peerSession)
    let c = try PacketCipher(algorithms: algorithms)
    try c.setKeys(keys)
    let h = Header(type: payloadLength == 0 ? .keepalive : .data, session: peerSession, counter: 0, timestampMs: 1)
    if payloadLength > 0 { buffer[Wire.offsetCiphertext] = 0x45 }  // an IPv4 packet, as check 10 wants
    let n = try c.seal(header: h, payloadLength: payloadLength, packet: buffer)
    if case .drop(let r) = openAt(opener, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), fromPeer: true, ms: 0) {
        fail("the first datagram of the peer's session was dropped: \(r.name)")
    }
} catch { fail("setup: \(error)") }
for i in 0..<packetLength { master[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 5) }
var forgedHeader = Header(type: .data, session: peerSession, counter: 0, timestampMs: 1)
forgedHeader.write(to: master)
@MainActor func forge(session: UInt64, fromPeer: Bool, ms: UInt64, expected: OpenOutcome) {
    buffer.copyMemory(from: UnsafeRawBufferPointer(master))
    buffer.storeBigEndian(session, at: 4)
    let o = openAt(opener, buffer, fromPeer: fromPeer, ms: ms)
    if o != expected { fail("forged datagram: \(o), expected \(expected)") }
}
let badMACNs = measure(measureSeconds) {
    forge(session: peerSession, fromPeer: true, ms: 0, expected: .drop(.badMAC))
} - copyNs
var nextSession = peerSession + 1
let derivations0 = opener.derivations
let newSessionNs = measure(measureSeconds) {
    nextSession &+= 1
    forge(session: nextSession, fromPeer: true, ms: 0, expected: .drop(.badMAC))
} - copyNs
if opener.derivations - derivations0 < nextSession - peerSession - 1 { fail("a new session did not cost a derivation") }
for _ in 0..<Int(DerivationBudget.burst) {
    nextSession &+= 1
    forge(session: nextSession, fromPeer: false, ms: 0, expected: .drop(.unknownSender))
}
let limitedNs = measure(measureSeconds) {
    nextSession &+= 1
    forge(session: nextSession, fromPeer: false, ms: 0, expected: .drop(.rateLimited))
} - copyNs
print("unauthenticated \(packetLength) B datagrams at the receiver (Opener.open, ns each):")
print(String(format: "  bad MAC, the peer's session          %9.1f ns", badMACNs))
print(String(format: "  new session each (a key derivation)  %9.1f ns", newSessionNs))
print(String(format: "  new session, budget spent            %9.1f ns", limitedNs))

// openssl speed, machine-readable: "+F:<n>:<alg>:<bytes per second>".
func opensslRate(_ args: String) -> Double {
    let cmd = "openssl speed -mr -elapsed -seconds 3 \(args) 2>&1"
    guard let f = popen(cmd, "r") else { fail("cannot run: \(cmd)") }
    var rate: Double?
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), f) != nil {
        let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if s.hasPrefix("+F:"), let last = s.split(separator: ":").last, let r = Double(last) { rate = r }
    }
    let status = pclose(f)
    guard status == 0, let rate, rate > 0 else { fail("no result from: \(cmd) (status \(status))") }
    return rate
}

print("openssl speed (3 s each, -elapsed):")
let enc = opensslRate("-evp aes-256-cbc -bytes \(padded)")
let dec = opensslRate("-evp aes-256-cbc -decrypt -bytes \(padded)")
let mac = opensslRate("-hmac sha256 -bytes \(macInput)")
let encNs = Double(padded) / enc * 1e9, decNs = Double(padded) / dec * 1e9, macNs = Double(macInput) / mac * 1e9
print(String(format: "  aes-256-cbc encrypt %5d B: %8.1f ns  (%7.1f MB/s)", padded, encNs, enc / 1e6))
print(String(format: "  aes-256-cbc decrypt %5d B: %8.1f ns  (%7.1f MB/s)", padded, decNs, dec / 1e6))
print(String(format: "  hmac sha256         %5d B: %8.1f ns  (%7.1f MB/s)", macInput, macNs, mac / 1e6))
let refSeal = encNs + macNs, refOpen = macNs + decNs, refBoth = refSeal + refOpen
print("openssl, same work (sum of times) vs squtun:")
func compare(_ name: String, _ ref: Double, _ ours: Double) {
    print("  " + pad(name) + String(format: " %9.1f ns/packet  %8.1f MB/s   squtun %9.1f ns = %5.1f%%",
                                    ref, mbps(ref), ours, ref / ours * 100))
}
compare("seal", refSeal, sealNs)
compare("open", refOpen, openNs)
compare("seal+open", refBoth, bothGrossNs)
