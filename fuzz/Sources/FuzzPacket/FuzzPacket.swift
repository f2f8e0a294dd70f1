// Fuzz target 1: a received datagram (docs/FUZZING.md).
//
// The input is one UDP datagram, given to a fresh `Opener` with the fixed
// inputs of docs/PROTOCOL.md §10 (PSK, own session S_B, start time, clock,
// 30 s limit). Besides "never crash" (ASan), it checks:
//
// A. The datagram as it is (what an attacker without the key can send):
//    - `Header.parse` agrees with a reference parser, error for error;
//    - a datagram the Opener accepts carries a correct MAC, checked with a
//      second, independently keyed PacketCipher and with libcrypto's HMAC()
//      (an accepted datagram that does not is a forgery), and decrypts to
//      the same payload;
//    - the drop reason is the one §6 prescribes: malformed (syntax),
//      reflected, bad-mac when the MAC is wrong;
//    - a drop changes no state: the same datagram again gives the same
//      drop (unknown-sender instead of bad-mac when not from the peer); an
//      accepted one again is a replay.
// B. The same bytes, re-sealed by the harness: the body is taken as the
//    plaintext, encrypted (AES-256-CBC, the datagram's IV) and MACed with
//    the keys of the datagram's session using libcrypto directly. This
//    reaches every check after the MAC; the outcome must equal that of a
//    reference model of §6 checks 5-10 (time skew, sent before start,
//    padding, type rules), and an accepted payload must be the plaintext.
// C. After B accepted a datagram: a sequence of keepalives of that session
//    whose counters come from the plaintext (16-bit signed steps) must pass
//    or fail exactly as a set-based model of the §7 replay window says;
//    then an older session is refused, a newer one accepted, and the first
//    session is refused from then on.

import FuzzSupport
import FuzzOracle
import Shared
import squtun_crypto
#if canImport(Glibc)
import Glibc
#endif

// MARK: Fixed inputs (docs/PROTOCOL.md §10)

private let ownSession: UInt64 = 1_795_000_000_500_000_000
private let startMs: UInt64 = 1_795_000_000_600
private let nowMs: UInt64 = 1_795_000_001_000
private let skewSeconds = 30
private let skewMs = UInt64(skewSeconds) * 1000

private let algorithms: CryptoAlgorithms = {
    do { return try CryptoAlgorithms() } catch { fail("CryptoAlgorithms: \(error)") }
}()

private let psk: SecretBytes = {
    let hex = Array("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4".utf8)
    var bytes = [UInt8](repeating: 0, count: hex.count / 2)
    for i in bytes.indices {
        bytes[i] = UInt8(String(decoding: hex[2 * i ..< 2 * i + 2], as: UTF8.self), radix: 16)!
    }
    return bytes.withUnsafeBytes { SecretBytes(copying: $0) }
}()

// MARK: Helpers

// fail/note/require: FuzzOracle.

/// A buffer of exactly `bytes.count` bytes (so ASan sees any overrun) holding a copy.
private func copy(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutableRawBufferPointer {
    let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
    if bytes.count > 0 { b.copyMemory(from: bytes) }
    return b
}

private func makeOpener() -> Opener {
    do {
        return try Opener(algorithms: algorithms, psk: psk, ownSession: ownSession,
                          startMs: startMs, skewSeconds: skewSeconds)
    } catch {
        fail("Opener.init: \(error)")
    }
}

private func keys(for session: UInt64) -> SessionKeys {
    do { return try SessionKeys(algorithms: algorithms, psk: psk, session: session) } catch {
        fail("SessionKeys: \(error)")
    }
}

private func cipher(_ k: SessionKeys) -> PacketCipher {
    do {
        let c = try PacketCipher(algorithms: algorithms)
        try c.setKeys(k)
        return c
    } catch {
        fail("PacketCipher: \(error)")
    }
}

private func be64(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(p[offset + i]) }
    return v
}

private func storeBE64(_ v: UInt64, _ p: UnsafeMutableRawBufferPointer, _ offset: Int) {
    for i in 0..<8 { p[offset + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * i)) }
}

/// §4 and §6 check 1 (1a–1e, in order) for a receiver of the default
/// suite in TUN mode between two point-to-point peers, written out again.
private func referenceParse(_ d: UnsafeRawBufferPointer) -> Result<Header, Header.SyntaxError> {
    let n = d.count
    if n < 32 { return .failure(.tooShort(n)) }
    if n > 65535 { return .failure(.tooLong(n)) }
    if d[0] == 1 { return .failure(.oldVersion) }
    if d[0] != 2 { return .failure(.unknownVersion(d[0])) }
    if d[1] != 1 { return .failure(.wrongSuite(d[1])) }
    let type: PacketType
    switch d[2] {
    case 1: type = .data
    case 2: type = .keepalive
    default: return .failure(.unknownType(d[2]))
    }
    if d[3] & 0xfe != 0 { return .failure(.unknownFlags(d[3])) }
    if d[3] != 0 { return .failure(.wrongMode(peerEthernet: true)) }
    let keyId = UInt32(d[4]) << 24 | UInt32(d[5]) << 16 | UInt32(d[6]) << 8 | UInt32(d[7])
    if keyId != 0 { return .failure(.unknownKey(keyId)) }
    if n < 96 || (n - 80) % 16 != 0 { return .failure(.badLength(n)) }
    return .success(Header(suite: 1, type: type, flags: 0, keyId: 0, session: be64(d, 8), counter: be64(d, 16),
                           timestampMs: be64(d, 24)))
}

/// HMAC-SHA256 of `d[0 ..< n-32]` under the MAC key of `k`, compared with the last 32 bytes.
private func referenceMACValid(_ d: UnsafeRawBufferPointer, _ k: SessionKeys) -> Bool {
    var mac = [UInt8](repeating: 0, count: 32)
    let ok = k.mac.withUnsafeBytes { key in
        mac.withUnsafeMutableBufferPointer { out in
            fuzz_hmac_sha256(key.baseAddress!.assumingMemoryBound(to: UInt8.self),
                             d.baseAddress!.assumingMemoryBound(to: UInt8.self), d.count - 32, out.baseAddress!)
        }
    }
    require(ok == 1, "HMAC() failed")
    return mac.elementsEqual(UnsafeRawBufferPointer(rebasing: d[(d.count - 32)...]))
}

/// Encrypts `packet[48 ..< n-32]` in place with the datagram's IV and writes the MAC.
private func reseal(_ packet: UnsafeMutableRawBufferPointer, _ k: SessionKeys) {
    let n = packet.count
    let base = packet.baseAddress!.assumingMemoryBound(to: UInt8.self)
    let ok = k.enc.withUnsafeBytes { e in
        fuzz_aes256cbc_encrypt(e.baseAddress!.assumingMemoryBound(to: UInt8.self), base + 32, base + 48, n - 80)
    }
    require(ok == 1, "AES-256-CBC failed")
    let ok2 = k.mac.withUnsafeBytes { m in
        fuzz_hmac_sha256(m.baseAddress!.assumingMemoryBound(to: UInt8.self), base, n - 32, base + n - 32)
    }
    require(ok2 == 1, "HMAC() failed")
}

/// What a fresh receiver must do with an authentic datagram (§6 checks 2, 5, 6, 9, 10).
private func model(_ h: Header, plaintext p: UnsafeRawBufferPointer) -> OpenOutcome {
    if h.session == ownSession { return .drop(.reflected) }
    let diff = h.timestampMs > nowMs ? h.timestampMs - nowMs : nowMs - h.timestampMs
    if diff > skewMs { return .drop(.timeSkew) }
    if h.timestampMs < startMs { return .drop(.replay) }
    let pad = Int(p[p.count - 1])
    if pad < 1 || pad > 16 { return .drop(.malformed) }
    for i in (p.count - pad)..<p.count where p[i] != UInt8(pad) { return .drop(.malformed) }
    let length = p.count - pad
    switch h.type {
    case .data:
        // Check 10: one IPv4 or IPv6 packet (its version nibble).
        if length == 0 || (p[0] >> 4 != 4 && p[0] >> 4 != 6) { return .drop(.malformed) }
        return .data(length: length)
    case .keepalive: return length != 0 ? .drop(.malformed) : .keepalive
    }
}

private func isAccepted(_ o: OpenOutcome) -> Bool {
    switch o {
    case .data, .keepalive: return true
    case .drop: return false
    }
}

/// Opens a copy of `bytes` (the Opener decrypts in place); returns the outcome and the payload if any.
private func open(_ opener: Opener, _ bytes: UnsafeRawBufferPointer, fromPeer: Bool) -> (OpenOutcome, [UInt8]) {
    let b = copy(bytes)
    defer { b.deallocate() }
    let outcome = opener.open(b, fromPeer: fromPeer, nowMs: nowMs, monotonicMs: nowMs)
    var payload: [UInt8] = []
    if case .data(let length) = outcome {
        require(length >= 1 && 48 + length <= bytes.count - 32 - 1,
                "data length \(length) outside the datagram (\(bytes.count) bytes)")
        payload = Array(UnsafeRawBufferPointer(rebasing: b[48 ..< 48 + length]))
    }
    return (outcome, payload)
}

/// What the same datagram must give a second time, from `other` (fromPeer: false).
private func expectedRepeat(_ first: OpenOutcome) -> OpenOutcome {
    switch first {
    case .data, .keepalive: return .drop(.replay)
    case .drop(.badMAC): return .drop(.unknownSender)
    case .drop: return first
    }
}

// MARK: A. The datagram as received

private func checkRaw(_ data: UnsafeRawBufferPointer) {
    let parsed = Header.parse(data)
    let reference = referenceParse(data)
    require(parsed == reference, "Header.parse \(parsed) != reference \(reference)")

    let opener = makeOpener()
    let (first, payload) = open(opener, data, fromPeer: true)
    let h: Header
    switch reference {
    case .success(let header): h = header
    case .failure(let e):
        require(first == .drop(e.dropReason), "syntax error \(reference) but outcome \(first)")
        return
    }
    if h.session == ownSession {
        require(first == .drop(.reflected), "own session but outcome \(first)")
    } else {
        let k = keys(for: h.session)
        let macValid = referenceMACValid(data, k)
        if !macValid {
            require(first == .drop(.badMAC), "wrong MAC but outcome \(first)")
        }
        if isAccepted(first) {
            // The forgery oracle: anything accepted must verify under the real keys.
            require(macValid, "ACCEPTED A DATAGRAM WITH A WRONG MAC (forgery): \(first)")
            let second = cipher(k)
            require(second.verify(data), "accepted datagram fails PacketCipher.verify")
            let b = copy(data)
            defer { b.deallocate() }
            let length = second.decrypt(b)
            switch first {
            case .data(let l):
                require(length == l && h.type == .data, "decrypt gives \(String(describing: length)), Opener \(l)")
                require(payload.elementsEqual(UnsafeRawBufferPointer(rebasing: b[48 ..< 48 + l])), "payload differs")
            case .keepalive:
                require(length == 0 && h.type == .keepalive, "keepalive but decrypt gives \(String(describing: length))")
            case .drop: break
            }
            let diff = h.timestampMs > nowMs ? h.timestampMs - nowMs : nowMs - h.timestampMs
            require(diff <= skewMs && h.timestampMs >= startMs, "accepted outside the time limits")
        }
    }
    let (again, _) = open(opener, data, fromPeer: false)
    require(again == expectedRepeat(first), "second open \(again) after \(first)")
    note("as received: \(first)")
}

// MARK: B. Re-sealed by the harness; C. window and sessions

private func checkResealed(_ data: UnsafeRawBufferPointer) {
    guard case .success(let h) = referenceParse(data) else { return }
    let n = data.count
    let k = keys(for: h.session)
    let packet = copy(data)
    defer { packet.deallocate() }
    let plaintext = copy(UnsafeRawBufferPointer(rebasing: data[48 ..< n - 32]))
    defer { plaintext.deallocate() }
    reseal(packet, k)
    let sealed = UnsafeRawBufferPointer(packet)

    let opener = makeOpener()
    let expected = model(h, plaintext: UnsafeRawBufferPointer(plaintext))
    let (outcome, payload) = open(opener, sealed, fromPeer: true)
    require(outcome == expected, "re-sealed: outcome \(outcome), model \(expected) (header \(h))")
    note("re-sealed: \(outcome)")
    if case .data(let l) = outcome {
        require(payload.elementsEqual(UnsafeRawBufferPointer(rebasing: plaintext[0..<l])), "re-sealed: payload differs")
    }
    let (again, _) = open(opener, sealed, fromPeer: false)
    require(again == expectedRepeat(outcome), "re-sealed: second open \(again) after \(outcome)")
    guard isAccepted(outcome) else { return }
    require(opener.peerSession == h.session, "peer session not taken over")

    // C. The replay window (§7) against a set: counters from 16-bit steps.
    let session = cipher(k)
    var seen: Set<UInt64> = [h.counter]
    var highest = h.counter
    var counter = h.counter
    let steps = min(plaintext.count / 2, 64)
    let keepalive = UnsafeMutableRawBufferPointer.allocate(byteCount: Wire.minPacketLength, alignment: 16)
    defer { keepalive.deallocate() }
    for i in 0..<steps {
        let step = Int16(bitPattern: UInt16(plaintext[2 * i]) << 8 | UInt16(plaintext[2 * i + 1]))
        counter = counter &+ UInt64(bitPattern: Int64(step))
        let header = Header(type: .keepalive, session: h.session, counter: counter, timestampMs: h.timestampMs)
        do {
            let length = try session.seal(header: header, payloadLength: 0, packet: keepalive)
            require(length == Wire.minPacketLength, "keepalive of \(length) bytes")
        } catch {
            fail("seal: \(error)")
        }
        let passes = counter > highest || (highest - counter < Wire.replayWindow && !seen.contains(counter))
        let (o, _) = open(opener, UnsafeRawBufferPointer(keepalive), fromPeer: i % 2 == 0)
        require(o == (passes ? .keepalive : .drop(.replay)),
                "window: counter \(counter) (highest \(highest)) gave \(o), model \(passes)")
        if passes {
            seen.insert(counter)
            highest = max(highest, counter)
        }
    }

    // Sessions (§6 check 3): older refused, newer accepted, then the old one refused.
    if h.session > 0 && h.session - 1 != ownSession {
        let older = copy(data)
        defer { older.deallocate() }
        storeBE64(h.session - 1, older, 8)
        reseal(older, keys(for: h.session - 1))
        let (o, _) = open(opener, UnsafeRawBufferPointer(older), fromPeer: true)
        require(o == .drop(.oldSession), "older session gave \(o)")
    }
    if h.session < UInt64.max && h.session + 1 != ownSession {
        let newer = copy(data)
        defer { newer.deallocate() }
        storeBE64(h.session + 1, newer, 8)
        reseal(newer, keys(for: h.session + 1))
        let (o, _) = open(opener, UnsafeRawBufferPointer(newer), fromPeer: false)
        require(o == outcome, "newer session gave \(o), expected \(outcome)")
        require(opener.peerSession == h.session + 1, "newer session not taken over")
        let (old, _) = open(opener, sealed, fromPeer: true)
        require(old == .drop(.oldSession), "old session after a newer one gave \(old)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPacket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    // libFuzzer's buffer is exactly `size` bytes; copy it so nothing writes to it.
    let input = copy(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    defer { input.deallocate() }
    note("\(input.count) bytes: \(referenceParse(UnsafeRawBufferPointer(input)))")
    checkRaw(UnsafeRawBufferPointer(input))
    checkResealed(UnsafeRawBufferPointer(input))
    return 0
}
