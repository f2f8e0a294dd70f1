// Fuzz target 1: a received datagram (docs/FUZZING.md).
//
// The input is one UDP datagram. It goes to six fresh receivers, one per
// cipher suite and mode (TUN, and TAP: `SuiteOpener` with the fixed inputs
// of docs/PROTOCOL.md §10: PSK, own session S_B, start time, clock, 30 s
// limit): the datagram's own suite byte decides which of them get past
// check 1b, and the others must refuse it as wrong-suite (or whatever
// check 1a finds first); its flags bit 0 decides which mode gets past 1c.
// So every input exercises every suite, mutating the suite byte moves an
// input between suites, and the seeds are plain datagrams of any suite.
// Besides "never crash" (ASan), for each receiver it checks:
//
// A. The datagram as it is (what an attacker without the key can send):
//    - `Header.parse` agrees with the reference parser (Reference.swift),
//      error for error;
//    - a datagram the receiver accepts carries a correct MAC or tag,
//      checked with a second, independently keyed cipher of the suite and
//      with libcrypto one-shots under keys of the reference's own HKDF (an
//      accepted datagram that does not is a forgery), and decrypts to the
//      same payload;
//    - the drop reason is the one §6 prescribes: the syntax error's,
//      reflected, bad-mac when the MAC or tag is wrong;
//    - a drop changes no state: the same datagram again gives the same
//      drop (unknown-sender instead of bad-mac when not from the peer); an
//      accepted one again is a replay.
// B. The same bytes, re-sealed by the harness: the body is taken as the
//    plaintext and sealed with libcrypto under the keys of the datagram's
//    session (CBC: the datagram's IV, then the MAC; AEAD: the counter's
//    nonce, the header as associated data). This reaches every check after
//    authentication; the outcome must equal the reference model of §6
//    (time skew, sent before start, CBC padding, type rules), and an
//    accepted payload must be the plaintext.
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

private let algorithms: CryptoAlgorithms = {
    do { return try CryptoAlgorithms() } catch { fail("CryptoAlgorithms: \(error)") }
}()

private let psk: SecretBytes = pskBytes.withUnsafeBytes { SecretBytes(copying: $0) }

/// squtun's own key source, for the second cipher of check A and the keepalives of C.
/// (libFuzzer calls the target on one thread.)
nonisolated(unsafe) private let keySource: SessionKeyDeriver = {
    do { return try SessionKeyDeriver(psk: psk) } catch { fail("SessionKeyDeriver: \(error)") }
}()

// fail/note/require: FuzzOracle.

/// A buffer of exactly `bytes.count` bytes (so ASan sees any overrun) holding a copy.
private func copy(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutableRawBufferPointer {
    let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
    if bytes.count > 0 { b.copyMemory(from: bytes) }
    return b
}

private func isAccepted(_ o: OpenOutcome) -> Bool {
    switch o {
    case .data, .keepalive: return true
    case .drop: return false
    }
}

/// What the same datagram must give a second time, from `other` (fromPeer: false).
private func expectedRepeat(_ first: OpenOutcome) -> OpenOutcome {
    switch first {
    case .data, .keepalive: return .drop(.replay)
    case .drop(.badMAC): return .drop(.unknownSender)
    case .drop: return first
    }
}

/// One receiver: squtun's opener of suite `C` and the reference of the same suite.
private struct Receiver<C: SuiteCipher> {
    let name: String
    /// TAP mode (Ethernet frames, flags bit 0); false: TUN mode.
    var ethernet = false
    var ref: RefSuite { RefSuite(id: C.Suite.id, ethernet: ethernet) }

    func makeOpener() -> SuiteOpener<C, SessionKeyDeriver> {
        do {
            return try SuiteOpener<C, SessionKeyDeriver>(algorithms: algorithms, psk: psk, ownSession: ownSession,
                                                         startMs: startMs, skewSeconds: skewSeconds,
                                                         ethernet: ethernet)
        } catch {
            fail("\(name): SuiteOpener.init: \(error)")
        }
    }

    /// A cipher of the suite keyed for `session` by squtun's key source.
    func cipher(_ session: UInt64) -> C {
        do {
            let c = try C(algorithms: algorithms)
            try keySource.setKeys(of: session, in: c)
            return c
        } catch {
            fail("\(name): cipher: \(error)")
        }
    }

    /// Opens a copy of `bytes` (the opener decrypts in place); the outcome and the payload if any.
    func open(_ opener: SuiteOpener<C, SessionKeyDeriver>, _ bytes: UnsafeRawBufferPointer,
              fromPeer: Bool) -> (OpenOutcome, [UInt8]) {
        let b = copy(bytes)
        defer { b.deallocate() }
        let outcome = C.open(b, with: opener, fromPeer: fromPeer, nowMs: nowMs, monotonicMs: nowMs)
        var payload: [UInt8] = []
        if case .data(let length) = outcome {
            let start = C.Suite.payloadStart
            require(length >= 1 && start + length + C.Suite.trailerLength <= bytes.count,
                    "\(name): data length \(length) outside the datagram (\(bytes.count) bytes)")
            payload = Array(UnsafeRawBufferPointer(rebasing: b[start ..< start + length]))
        }
        return (outcome, payload)
    }

    // MARK: A. The datagram as received

    func checkRaw(_ data: UnsafeRawBufferPointer) {
        let parsed = Header.parse(data, suite: C.Suite.self, ethernet: ethernet)
        let reference = ref.parse(data)
        require(parsed == reference, "\(name): Header.parse \(parsed) != reference \(reference)")

        let opener = makeOpener()
        let (first, payload) = open(opener, data, fromPeer: true)
        let h: Header
        switch reference {
        case .success(let header): h = header
        case .failure(let e):
            require(first == .drop(e.dropReason), "\(name): syntax error \(reference) but outcome \(first)")
            return
        }
        if h.session == ownSession {
            require(first == .drop(.reflected), "\(name): own session but outcome \(first)")
        } else {
            let valid = ref.authentic(data, ref.keys(h.session))
            if !valid {
                require(first == .drop(.badMAC), "\(name): wrong MAC/tag but outcome \(first)")
            }
            if isAccepted(first) {
                // The forgery oracle: anything accepted must verify under the real keys.
                require(valid, "\(name): ACCEPTED A DATAGRAM WITH A WRONG MAC/TAG (forgery): \(first)")
                let second = cipher(h.session)
                let b = copy(data)
                defer { b.deallocate() }
                require(second.verify(b), "\(name): accepted datagram fails the second cipher's verify")
                let length = second.decrypt(b)
                let start = C.Suite.payloadStart
                switch first {
                case .data(let l):
                    require(length == l && h.type == .data,
                            "\(name): decrypt gives \(String(describing: length)), opener \(l)")
                    require(payload.elementsEqual(UnsafeRawBufferPointer(rebasing: b[start ..< start + l])),
                            "\(name): payload differs")
                case .keepalive:
                    require(length == 0 && h.type == .keepalive,
                            "\(name): keepalive but decrypt gives \(String(describing: length))")
                case .drop: break
                }
                let diff = h.timestampMs > nowMs ? h.timestampMs - nowMs : nowMs - h.timestampMs
                require(diff <= skewMs && h.timestampMs >= startMs, "\(name): accepted outside the time limits")
            }
        }
        let (again, _) = open(opener, data, fromPeer: false)
        require(again == expectedRepeat(first), "\(name): second open \(again) after \(first)")
        note("\(name) as received: \(first)")
    }

    // MARK: B. Re-sealed by the harness; C. window and sessions

    func checkResealed(_ data: UnsafeRawBufferPointer) {
        guard case .success(let h) = ref.parse(data) else { return }
        let n = data.count
        let packet = copy(data)
        defer { packet.deallocate() }
        let plaintext = copy(UnsafeRawBufferPointer(rebasing: data[ref.bodyStart ..< n - ref.trailer]))
        defer { plaintext.deallocate() }
        ref.reseal(packet, ref.keys(h.session))
        let sealed = UnsafeRawBufferPointer(packet)

        let opener = makeOpener()
        let expected = ref.model(h, plaintext: UnsafeRawBufferPointer(plaintext))
        let (outcome, payload) = open(opener, sealed, fromPeer: true)
        require(outcome == expected, "\(name) re-sealed: outcome \(outcome), model \(expected) (header \(h))")
        note("\(name) re-sealed: \(outcome)")
        if case .data(let l) = outcome {
            require(payload.elementsEqual(UnsafeRawBufferPointer(rebasing: plaintext[0..<l])),
                    "\(name) re-sealed: payload differs")
        }
        let (again, _) = open(opener, sealed, fromPeer: false)
        require(again == expectedRepeat(outcome), "\(name) re-sealed: second open \(again) after \(outcome)")
        guard isAccepted(outcome) else { return }
        require(opener.peerSession == h.session, "\(name): peer session not taken over")

        // C. The replay window (§7) against a set: counters from 16-bit steps.
        let session = cipher(h.session)
        var seen: Set<UInt64> = [h.counter]
        var highest = h.counter
        var counter = h.counter
        let steps = min(plaintext.count / 2, 64)
        let keepaliveLength = C.Suite.packetLength(payload: 0)
        let keepalive = UnsafeMutableRawBufferPointer.allocate(byteCount: keepaliveLength, alignment: 16)
        defer { keepalive.deallocate() }
        for i in 0..<steps {
            let step = Int16(bitPattern: UInt16(plaintext[2 * i]) << 8 | UInt16(plaintext[2 * i + 1]))
            counter = counter &+ UInt64(bitPattern: Int64(step))
            let header = Header(suite: ref.id, type: .keepalive, flags: h.flags, session: h.session, counter: counter,
                                timestampMs: h.timestampMs)
            do {
                let length = try session.seal(header: header, payloadLength: 0, packet: keepalive)
                require(length == keepaliveLength, "\(name): keepalive of \(length) bytes")
            } catch {
                fail("\(name): seal: \(error)")
            }
            let passes = counter > highest || (highest - counter < Wire.replayWindow && !seen.contains(counter))
            let (o, _) = open(opener, UnsafeRawBufferPointer(keepalive), fromPeer: i % 2 == 0)
            require(o == (passes ? .keepalive : .drop(.replay)),
                    "\(name) window: counter \(counter) (highest \(highest)) gave \(o), model \(passes)")
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
            ref.reseal(older, ref.keys(h.session - 1))
            let (o, _) = open(opener, UnsafeRawBufferPointer(older), fromPeer: true)
            require(o == .drop(.oldSession), "\(name): older session gave \(o)")
        }
        if h.session < UInt64.max && h.session + 1 != ownSession {
            let newer = copy(data)
            defer { newer.deallocate() }
            storeBE64(h.session + 1, newer, 8)
            ref.reseal(newer, ref.keys(h.session + 1))
            let (o, _) = open(opener, UnsafeRawBufferPointer(newer), fromPeer: false)
            require(o == outcome, "\(name): newer session gave \(o), expected \(outcome)")
            require(opener.peerSession == h.session + 1, "\(name): newer session not taken over")
            let (old, _) = open(opener, sealed, fromPeer: true)
            require(old == .drop(.oldSession), "\(name): old session after a newer one gave \(old)")
        }
    }

    func check(_ data: UnsafeRawBufferPointer) {
        checkRaw(data)
        checkResealed(data)
    }
}

private let cbc = Receiver<PacketCipher>(name: "aes-256-cbc-hmac-sha256")
private let gcm = Receiver<AES256GCMCipher>(name: "aes-256-gcm")
private let chacha = Receiver<ChaCha20Poly1305Cipher>(name: "chacha20-poly1305")
private let cbcTap = Receiver<PacketCipher>(name: "aes-256-cbc-hmac-sha256 TAP", ethernet: true)
private let gcmTap = Receiver<AES256GCMCipher>(name: "aes-256-gcm TAP", ethernet: true)
private let chachaTap = Receiver<ChaCha20Poly1305Cipher>(name: "chacha20-poly1305 TAP", ethernet: true)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPacket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    // libFuzzer's buffer is exactly `size` bytes; copy it so nothing writes to it.
    let input = copy(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    defer { input.deallocate() }
    let d = UnsafeRawBufferPointer(input)
    note("\(input.count) bytes, suite byte \(input.count > 1 ? String(input[1]) : "-")")
    cbc.check(d)
    gcm.check(d)
    chacha.check(d)
    cbcTap.check(d)
    gcmTap.check(d)
    chachaTap.check(d)
    return 0
}
