import Glibc
import Shared

// The attack subcommands. Each sends its datagrams through a raw socket
// with the source address of our choice (--from IP:PORT: the peer's own
// address, or any other), paced at --rate datagrams per second, and ends by
// printing one line: how many it sent and, per PROTOCOL.md drop reason, how
// many of them the receiver must drop for that reason (see Predict.swift).

private func sender(_ a: Args) throws(AttackError) -> RawSender {
    try RawSender(from: a.endpoint("from"), to: a.endpoint("to"), mtu: a.int("mtu", default: 1500))
}

private func rate(_ a: Args) throws(AttackError) -> Double {
    try a.double("rate", default: 20000)
}

/// A datagram that passes check 1's syntax for a receiver of `suite` (v2,
/// that suite, the mode `flags` says (bit 0: TAP), the key id `keyId`, its length rule): what squtun could have sent.
private func looksGenuine(_ d: UnsafeRawBufferPointer, _ suite: SuiteID, keyId: UInt32, flags: UInt8) -> Bool {
    d.count >= Wire.headerLength && suite.layout.isWellFormedLength(d.count) && d[0] == 2 && d[1] == suite.rawValue
        && (d[2] == 1 || d[2] == 2) && d[3] == flags && d.baseAddress!.get32(Wire.offsetKeyId) == keyId
}

// MARK: capture

/// capture --iface IF --dport PORT [--src IP] [--count N] [--timeout S] --out FILE
///         [--cipher NAME] [--client NAME | --key-id N]
///         [--immediate --to EP --from EP --own S --peer S [--from-peer]]
/// Records genuine squtun datagrams of the suite --cipher names, with the
/// key id --client or --key-id names (default 0), seen on IF (either direction) going to
/// PORT (from IP). With --immediate each one is also sent again to --to the
/// moment it is seen (our own copies are recognised and not recorded).
func captureCommand(_ a: Args) throws(AttackError) {
    let iface = try a.string("iface")
    let dport = UInt16(try a.int("dport"))
    let srcText = a.string("src", default: "")
    let src: UInt32? = srcText.isEmpty ? nil : Endpoint.parseAddress(srcText)
    if !srcText.isEmpty && src == nil { throw .usage("--src: '\(srcText)' is not an IPv4 address") }
    let want = try a.int("count", default: 10)
    let timeout = try a.double("timeout", default: 10)
    let out = try a.string("out")
    let immediate = a.flag("immediate")
    let suite = try suiteOption(a)
    let keyId = try keyIdOption(a)
    let flags = modeFlags(a)
    let replayer = immediate ? try sender(a) : nil
    let model = immediate ? try TargetModel(a) : nil

    // With the virtio header: a GSO run is cut into its datagrams, never
    // recorded as one.
    let sock = try PacketSocket(interface: iface, vnetHeader: true)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 70000, alignment: 16)
    defer { buffer.deallocate() }
    var seen = Set<[UInt8]>()
    var captured: [[UInt8]] = []
    var tally = Tally()
    var runs = 0  // GSO runs cut into datagrams
    let deadline = monoSeconds() + timeout
    while captured.count < want && monoSeconds() < deadline {
        switch sock.receive(into: buffer, timeoutMs: 100) {
        case .timeout: continue
        case .gone(let why): throw .system("capture on \(iface): \(why)")
        case .packet(let length, _):
            let all = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
            guard let vnet = VnetHeader(all) else { continue }
            let ip = UnsafeRawBufferPointer(rebasing: all[VnetHeader.ipOffset...])
            guard let u = UDPView(ip), u.destination.port == dport,
                  src == nil || u.source.address == src else { continue }
            let payload = UnsafeRawBufferPointer(rebasing: ip[u.payloadOffset..<(u.payloadOffset + u.payloadLength)])
            let step: Int
            switch vnet.gsoType {
            case VnetHeader.gsoNone: step = payload.count
            case VnetHeader.gsoUDPL4 where vnet.gsoSize > 0:
                step = vnet.gsoSize
                if payload.count > step { runs += 1 }
            default: continue  // not UDP segmentation: nothing of ours
            }
            var at = 0
            while at < payload.count && captured.count < want {
                let d = UnsafeRawBufferPointer(rebasing: payload[at..<min(at + step, payload.count)])
                at += step
                guard looksGenuine(d, suite, keyId: keyId, flags: flags) else { continue }
                // Session, counter and the MAC or tag identify a datagram (and our own copy of it).
                let key = Array(d[8..<24]) + Array(d[(d.count - 16)...])
                guard seen.insert(key).inserted else { continue }
                captured.append(Array(d))
                if let replayer, let model {
                    tally.count(predict(d, model, .genuineReplay), sent: replayer.send(d))
                }
            }
        }
    }
    try Store.write(captured, to: out)
    say("captured=\(captured.count) gso-runs=\(runs)")
    if immediate { say(tally.line) }
    if captured.count < want { throw .system("captured only \(captured.count) of \(want) datagrams in \(timeout) s") }
}

// MARK: replay / reflect

/// replay --in FILE --to EP --from EP --own S --peer S [--from-peer] [--repeat K] [--rate R]
///        [--client NAME | --key-id N]
/// Sends every recorded datagram again, unchanged (`reflect` is the same,
/// aimed at the datagrams' own sender). Only with --client or --key-id, a
/// datagram recorded with another key id is sent with that one written
/// over it: the header is authenticated, so its MAC (tag) must fail.
/// Without them every datagram goes as recorded, whatever its key id.
func replayCommand(_ a: Args) throws(AttackError) {
    let datagrams = try Store.read(try a.string("in"))
    let s = try sender(a)
    let model = try TargetModel(a)
    let rewrite = !a.string("client", default: "").isEmpty || !a.string("key-id", default: "").isEmpty
    let repeats = try a.int("repeat", default: 1)
    var pacer = Pacer(rate: try rate(a))
    var tally = Tally()
    for _ in 0..<repeats {
        for var d in datagrams {
            d.withUnsafeMutableBytes { b in
                guard rewrite, b.count >= Wire.offsetKeyId + 4,
                      UnsafeRawPointer(b.baseAddress!).get32(Wire.offsetKeyId) != model.keyId
                else {
                    tally.count(predict(UnsafeRawBufferPointer(b), model, .genuineReplay), sent: s.send(UnsafeRawBufferPointer(b)))
                    return
                }
                b.baseAddress!.put32(model.keyId, Wire.offsetKeyId)
                tally.count(predict(UnsafeRawBufferPointer(b), model, .macFails), sent: s.send(UnsafeRawBufferPointer(b)))
            }
            pacer.tick()
        }
    }
    say(tally.line)
}

// MARK: tamper

/// tamper --in FILE --to EP --from EP --own S --peer S [--from-peer]
///        [--datagrams K] [--append MAX] [--rate R]
/// For each of the first K recorded datagrams (n bytes): n*8 copies with one
/// bit flipped, n truncated copies (lengths 0 ..< n), MAX copies with 1...MAX
/// random bytes appended.
func tamperCommand(_ a: Args) throws(AttackError) {
    let all = try Store.read(try a.string("in"))
    let k = try a.int("datagrams", default: all.count)
    let appendMax = try a.int("append", default: 64)
    guard all.count >= k else { throw .usage("only \(all.count) datagrams in the file, \(k) asked for") }
    let s = try sender(a)
    let model = try TargetModel(a)
    var pacer = Pacer(rate: try rate(a))
    var rng = FastRandom()
    var flips = Tally(), truncations = Tally(), appends = Tally()
    for original in all.prefix(k) {
        var d = original
        let n = d.count
        for bit in 0..<(n * 8) {
            d[bit / 8] ^= UInt8(1 << (bit % 8))
            d.withUnsafeBytes { b in flips.count(predict(b, model, .macFails), sent: s.send(b)) }
            d[bit / 8] ^= UInt8(1 << (bit % 8))
            pacer.tick()
        }
        for length in 0..<n {
            d.withUnsafeBytes { b in
                let cut = UnsafeRawBufferPointer(rebasing: b[0..<length])
                truncations.count(predict(cut, model, .macFails), sent: s.send(cut))
            }
            pacer.tick()
        }
        for extra in stride(from: 1, through: appendMax, by: 1) {
            var longer = d
            longer += (0..<extra).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            longer.withUnsafeBytes { b in appends.count(predict(b, model, .macFails), sent: s.send(b)) }
            pacer.tick()
        }
    }
    say("flips=\(flips.sent) truncations=\(truncations.sent) appends=\(appends.sent)")
    var total = flips
    total.add(truncations)
    total.add(appends)
    say(total.line)
}

// MARK: forge

/// forge --kind random|header|wrongkey --to EP --from EP --own S --peer S [--from-peer]
///       [--rounds R] [--max-length L] [--count N] [--rate R]
/// random: R rounds of random bytes of every length 0...L (2000).
/// header: N datagrams with a valid v2 header (version, the suite --cipher
///   names, type, flags, the key id --client/--key-id names (default 0), the peer's current session or a newer or
///   an older one, a counter, the time), a length of that suite, and random
///   IV, ciphertext and MAC (CBC) or ciphertext and tag (AEAD).
/// wrongkey: N datagrams correctly sealed in that suite, but with a random key.
func forgeCommand(_ a: Args) throws(AttackError) {
    let kind = try a.string("kind")
    let s = try sender(a)
    let model = try TargetModel(a)
    var pacer = Pacer(rate: try rate(a))
    var rng = FastRandom()
    var tally = Tally()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 70000, alignment: 16)
    defer { buffer.deallocate() }
    let base = buffer.baseAddress!
    let flags = modeFlags(a)

    // Sessions a forger would try: the one on the wire (the peer's), newer
    // ones (each costs the receiver a key derivation), an older one.
    let current = model.peerSession ?? (rng.next() | 1 << 62)
    let newer = (0..<16).map { _ in current &+ 1 &+ UInt64(rng.below(1 << 40)) }
    func session(_ i: Int) -> UInt64 {
        switch i % 8 {
        case 3, 7: newer[i / 8 % newer.count]
        case 5: current &- 1 &- UInt64(i)
        default: current
        }
    }

    switch kind {
    case "random":
        let rounds = try a.int("rounds", default: 1)
        let maxLength = try a.int("max-length", default: 2000)
        for _ in 0..<rounds {
            for length in 0...maxLength {
                rng.fill(base, length)
                let d = UnsafeRawBufferPointer(start: base, count: length)
                tally.count(predict(d, model, .macFails), sent: s.send(d))
                pacer.tick()
            }
        }
    case "header":
        let count = try a.int("count")
        for i in 0..<count {
            let length = model.suite == .aes256CBCHMACSHA256 ? 80 + 16 * (1 + rng.below(88)) : 48 + rng.below(1400)
            rng.fill(base, length)
            base.storeBytes(of: Wire.version, toByteOffset: Wire.offsetVersion, as: UInt8.self)
            base.storeBytes(of: model.suite.rawValue, toByteOffset: Wire.offsetSuite, as: UInt8.self)
            base.storeBytes(of: UInt8(1 + rng.below(2)), toByteOffset: Wire.offsetType, as: UInt8.self)
            base.storeBytes(of: flags, toByteOffset: Wire.offsetFlags, as: UInt8.self)
            base.put32(model.keyId, Wire.offsetKeyId)
            base.put64(session(i), Wire.offsetSession)
            base.put64(rng.next() >> 16, Wire.offsetCounter)
            base.put64(WallClock.nowMs(), Wire.offsetTimestamp)
            let d = UnsafeRawBufferPointer(start: base, count: length)
            tally.count(predict(d, model, .macFails), sent: s.send(d))
            pacer.tick()
        }
    case "wrongkey":
        let count = try a.int("count")
        let crafter = try Crafter(keyPath: nil, suite: model.suite)
        let inner = Endpoint.parseAddress(a.string("inner-dst", default: "10.77.0.2")) ?? 0
        for i in 0..<count {
            let payload = 28 + rng.below(1300)
            let n = try crafter.seal(type: .data, session: session(i), counter: rng.next() >> 16,
                                     timestampMs: WallClock.nowMs(), keyId: model.keyId, flags: flags) {
                writeMarker($0, length: payload, destination: inner, ethernet: flags != 0)
            }
            let d = UnsafeRawBufferPointer(rebasing: crafter.buffer[0..<n])
            tally.count(predict(d, model, .macFails), sent: s.send(d))
            pacer.tick()
        }
    default:
        throw .usage("--kind must be random, header or wrongkey")
    }
    say(tally.line)
}

// MARK: skew / oldsession (sealed with the real key)

/// skew --key FILE --session S --offset-ms O --count N [--counter-base B]
///      [--counter-span SPAN] --limit-s L --to EP --from EP --own S --peer S [--from-peer]
/// Seals N data datagrams with the tunnel's key, session S and counters
/// B + (i mod SPAN) (counters S's sender already used), timestamped now + O ms.
/// Outside the limit: time-skew; inside it: the time check passes and the
/// replay window refuses them.
///
/// oldsession --key FILE --session S_OLD --count N [--counter-base B] ...
/// The same with fresh counters and the current time: only check 3 (the
/// session is older than the peer's current one) stands in the way.
func sealCommand(_ a: Args, oldSession: Bool) throws(AttackError) {
    let crafter = try Crafter(keyPath: try a.string("key"), suite: try suiteOption(a))
    let session = try a.uint64("session")
    let offset = Int64(oldSession ? 0 : try a.int("offset-ms"))
    let count = try a.int("count")
    let counterBase = UInt64(try a.int("counter-base", default: oldSession ? 1_000_000_000 : 0))
    let span = try a.int("counter-span", default: oldSession ? max(count, 1) : 1000)
    let inner = Endpoint.parseAddress(a.string("inner-dst", default: "10.77.0.2")) ?? 0
    let s = try sender(a)
    let model = try TargetModel(a)
    let flags = modeFlags(a)
    if oldSession, let p = model.peerSession, session >= p {
        throw .usage("--session \(session) is not older than the peer's current \(p)")
    }
    var pacer = Pacer(rate: try rate(a))
    var tally = Tally()
    for i in 0..<count {
        let now = Int64(WallClock.nowMs())
        let n = try crafter.seal(type: .data, session: session, counter: counterBase + UInt64(i % span),
                                 timestampMs: UInt64(now + offset), keyId: model.keyId, flags: flags) {
            writeMarker($0, length: 64, destination: inner, ethernet: flags != 0)
        }
        let d = UnsafeRawBufferPointer(rebasing: crafter.buffer[0..<n])
        tally.count(predict(d, model, .sealedUsedCounter(offsetMs: offset)), sent: s.send(d))
        pacer.tick()
    }
    say(tally.line)
}

// MARK: flood

/// flood --to EP [--from EP] --rate PPS --seconds S [--header-fraction F] [--senders N] [--batch B]
///       [--cipher NAME] [--client NAME | --key-id N]
/// Random datagrams as fast as --rate allows (0: no limit), for S seconds:
/// random bytes of random length (0...1472); a fraction F of them with a
/// valid v2 header of the suite --cipher names (default the default suite),
/// a length of that suite, the key id --client/--key-id names (default 0)
/// and a random session instead (each newer one costs the
/// receiver a key derivation and an HMAC). Without --from, an ordinary UDP
/// socket, and with --batch B > 1 B datagrams per sendmmsg call (up to 64):
/// the most one process can push. N processes share the rate.
/// Prints sent=N seconds=T rate=R.
func floodCommand(_ a: Args) throws(AttackError) {
    let to = try a.endpoint("to")
    let fromText = a.string("from", default: "")
    let from: Endpoint? = fromText.isEmpty ? nil : try a.endpoint("from")
    let target = try a.double("rate", default: 100_000)
    let seconds = try a.double("seconds", default: 10)
    let headerFraction = try a.double("header-fraction", default: 0)
    let senders = max(1, try a.int("senders", default: 1))
    let batch = min(64, max(1, try a.int("batch", default: 1)))
    let suite = try suiteOption(a)
    let keyId = try keyIdOption(a)
    let flags = modeFlags(a)

    let start = monoSeconds()
    var pipeFDs: [Int32] = [-1, -1]
    guard pipe(&pipeFDs) == 0 else { throw .system("pipe: \(errnoText())") }
    var children: [pid_t] = []
    for _ in 1..<senders {
        let pid = fork()
        if pid < 0 { throw .system("fork: \(errnoText())") }
        if pid == 0 {
            close(pipeFDs[0])
            var n = (try? floodLoop(to: to, from: from, rate: target / Double(senders), seconds: seconds,
                                    headerFraction: headerFraction, batch: batch, suite: suite, keyId: keyId, flags: flags)) ?? 0
            _ = write(pipeFDs[1], &n, MemoryLayout<Int>.size)
            _exit(0)
        }
        children.append(pid)
    }
    close(pipeFDs[1])
    var sent = try floodLoop(to: to, from: from, rate: target / Double(senders), seconds: seconds,
                             headerFraction: headerFraction, batch: batch, suite: suite, keyId: keyId, flags: flags)
    for pid in children {
        var n = 0
        if read(pipeFDs[0], &n, MemoryLayout<Int>.size) == MemoryLayout<Int>.size { sent += n }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
    close(pipeFDs[0])
    let elapsed = monoSeconds() - start
    say("sent=\(sent) seconds=\(fixed2(elapsed)) rate=\(Int(Double(sent) / elapsed))")
}

private func floodLoop(to: Endpoint, from: Endpoint?, rate: Double, seconds: Double,
                       headerFraction: Double, batch: Int, suite: SuiteID, keyId: UInt32, flags: UInt8) throws(AttackError) -> Int {
    let raw: RawSender? = from == nil ? nil : try RawSender(from: from!, to: to)
    let plain: PlainSender? = from == nil ? try PlainSender(to: to) : nil
    let batch = raw == nil ? batch : 1
    var rng = FastRandom()
    // A pool of random datagrams; each send re-randomises its first 24 bytes.
    let poolSize = 256
    let slot = 1536
    let pool = UnsafeMutableRawPointer.allocate(byteCount: poolSize * slot, alignment: 16)
    defer { pool.deallocate() }
    rng.fill(pool, poolSize * slot)
    var lengths = [UInt32](repeating: 0, count: poolSize)
    var headers = [Bool](repeating: false, count: poolSize)
    for i in 0..<poolSize {
        headers[i] = Double(rng.below(1_000_000)) < headerFraction * 1_000_000
        let headerLength = suite == .aes256CBCHMACSHA256 ? 80 + 16 * (1 + rng.below(87)) : 48 + rng.below(1400)
        lengths[i] = UInt32(headers[i] ? headerLength : rng.below(1473))
    }
    var pacer = Pacer(rate: rate, burst: max(32, batch))
    var i = 0
    while true {
        if i & 255 == 0 && pacer.elapsed >= seconds { break }
        let first = i & (poolSize - 1)
        // `n` datagrams from `first` (a batch never wraps around the pool: 256 = 4 * 64).
        let n = min(batch, poolSize - first)
        for k in first..<first + n {
            let p = pool + k * slot
            if headers[k] {
                p.storeBytes(of: Wire.version, toByteOffset: Wire.offsetVersion, as: UInt8.self)
                p.storeBytes(of: suite.rawValue, toByteOffset: Wire.offsetSuite, as: UInt8.self)
                p.storeBytes(of: UInt8(1 + (k & 1)), toByteOffset: Wire.offsetType, as: UInt8.self)
                p.storeBytes(of: flags, toByteOffset: Wire.offsetFlags, as: UInt8.self)
                p.put32(keyId, Wire.offsetKeyId)
                p.put64(rng.next(), Wire.offsetSession)          // session: random, older or newer
                p.put64(rng.next() >> 16, Wire.offsetCounter)    // counter
                p.put64(WallClock.nowMs(), Wire.offsetTimestamp)  // timestamp
            } else if lengths[k] >= 8 {
                p.storeBytes(of: rng.next(), toByteOffset: 0, as: UInt64.self)
                if lengths[k] >= 24 {
                    p.storeBytes(of: rng.next(), toByteOffset: 8, as: UInt64.self)
                    p.storeBytes(of: rng.next(), toByteOffset: 16, as: UInt64.self)
                }
            }
        }
        if let raw {
            raw.send(UnsafeRawBufferPointer(start: pool + first * slot, count: Int(lengths[first])))
        } else if n == 1 {
            plain!.send(pool + first * slot, Int(lengths[first]))
        } else {
            lengths.withUnsafeBufferPointer {
                plain!.sendBatch(pool, slot: slot, first: first, count: n, lengths: $0.baseAddress!, to: to)
            }
        }
        i += n
        for _ in 0..<n { pacer.tick() }
    }
    return raw?.sent ?? plain!.sent
}

// MARK: seal (a client's key id, another key)

/// seal --key FILE --session S --count N [--counter-base B] [--inner-dst IP]
///      [--client NAME | --key-id N] TARGET
/// Seals N fresh data datagrams (counters B, B+1, …, the current time,
/// each carrying a marker packet) with FILE's key, in session S, under the
/// key id --client or --key-id names: what a client that knows its own key
/// can send while claiming to be another. The prediction is for a FILE
/// that is not the named client's key: its MAC (tag) fails. With the
/// client's own key they are genuine, and are delivered. With
/// `--other-mode`, sealed with the flags of the other mode than the
/// attacked end's (`--tap`): check 1c refuses them as wrong-mode, whatever
/// the key (with the tunnel's own key and fresh counters, the mode check
/// is all that stands in their way).
func impersonateCommand(_ a: Args) throws(AttackError) {
    let crafter = try Crafter(keyPath: try a.string("key"), suite: try suiteOption(a))
    let session = try a.uint64("session")
    let count = try a.int("count")
    let counterBase = UInt64(try a.int("counter-base", default: 0))
    let inner = Endpoint.parseAddress(a.string("inner-dst", default: "10.77.0.2")) ?? 0
    let s = try sender(a)
    let model = try TargetModel(a)
    let flags = modeFlags(a)
    var pacer = Pacer(rate: try rate(a))
    var tally = Tally()
    for i in 0..<count {
        let n = try crafter.seal(type: .data, session: session, counter: counterBase + UInt64(i),
                                 timestampMs: WallClock.nowMs(), keyId: model.keyId, flags: flags) {
            writeMarker($0, length: 64, destination: inner, ethernet: flags != 0)
        }
        let d = UnsafeRawBufferPointer(rebasing: crafter.buffer[0..<n])
        tally.count(predict(d, model, .macFails), sent: s.send(d))
        pacer.tick()
    }
    say(tally.line)
}
