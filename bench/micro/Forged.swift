import Foundation
import Shared
import squtun_crypto

// What an unauthenticated datagram costs the receiver (PROTOCOL.md §6,
// check 4), through Opener as the daemon calls it: one that fails the MAC
// of the peer's current session, one naming a session never seen (a key
// derivation each: the MAC key only) from the peer's address, and the same
// from elsewhere once the derivation budget is spent (refused unverified).
// The forged datagrams have the length of this run's datagram. Written for
// the suite `Opener` opens (the CBC suite).

@MainActor func forgedCosts(algorithms: CryptoAlgorithms, payloadLength: Int, seconds: Double) {
    let packetLength = Opener.Suite.packetLength(payload: payloadLength)
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * packetLength, alignment: 64)
    defer { storage.deallocate() }
    let buffer = UnsafeMutableRawBufferPointer(rebasing: storage[0..<packetLength])
    let master = UnsafeMutableRawBufferPointer(rebasing: storage[packetLength...])

    func openAt(_ o: Opener, _ p: UnsafeMutableRawBufferPointer, fromPeer: Bool, ms: UInt64) -> OpenOutcome {
        o.open(p, fromPeer: fromPeer, nowMs: ms, monotonicMs: ms)
    }
    let opener: Opener
    let peerSession: UInt64 = 0x5eed
    do {
        let psk = SecretBytes(count: Wire.pskLength)
        try psk.withUnsafeMutableBytes { try randomBytes($0) }
        opener = try Opener(algorithms: algorithms, psk: psk, ownSession: 1, startMs: 0, skewSeconds: 0)
        let c = try PacketCipher(algorithms: algorithms)
        try SessionKeyDeriver(psk: psk).setKeys(of: peerSession, in: c)
        var h = benchHeader(payloadLength: payloadLength)
        h.session = peerSession
        if payloadLength > 0 { buffer[Opener.Suite.payloadStart] = 0x45 }  // an IPv4 packet, as check 10 wants
        let n = try c.seal(header: h, payloadLength: payloadLength, packet: buffer)
        if case .drop(let r) = openAt(opener, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]),
                                      fromPeer: true, ms: 0) {
            fail("the first datagram of the peer's session was dropped: \(r.name)")
        }
    } catch { fail("setup: \(error)") }
    for i in 0..<packetLength { master[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 5) }
    var forgedHeader = benchHeader(payloadLength: 1)
    forgedHeader.session = peerSession
    forgedHeader.write(to: master)
    func forge(session: UInt64, fromPeer: Bool, expected: OpenOutcome) {
        buffer.copyMemory(from: UnsafeRawBufferPointer(master))
        buffer.storeBigEndian(session, at: Wire.offsetSession)
        let o = openAt(opener, buffer, fromPeer: fromPeer, ms: 0)
        if o != expected { fail("forged datagram: \(o), expected \(expected)") }
    }
    let copyNs = measure(seconds / 4) { buffer.copyMemory(from: UnsafeRawBufferPointer(master)) }
    let badMACNs = measure(seconds) {
        forge(session: peerSession, fromPeer: true, expected: .drop(.badMAC))
    } - copyNs
    var nextSession = peerSession + 1
    let derivations0 = opener.derivations
    let newSessionNs = measure(seconds) {
        nextSession &+= 1
        forge(session: nextSession, fromPeer: true, expected: .drop(.badMAC))
    } - copyNs
    if opener.derivations - derivations0 < nextSession - peerSession - 1 { fail("a new session did not cost a derivation") }
    for _ in 0..<Int(DerivationBudget.burst) {
        nextSession &+= 1
        forge(session: nextSession, fromPeer: false, expected: .drop(.unknownSender))
    }
    let limitedNs = measure(seconds) {
        nextSession &+= 1
        forge(session: nextSession, fromPeer: false, expected: .drop(.rateLimited))
    } - copyNs
    print("  unauthenticated \(packetLength) B datagrams at the receiver (Opener.open, ns each):")
    print(String(format: "    bad MAC, the peer's session          %9.1f ns", badMACNs))
    print(String(format: "    new session each (a key derivation)  %9.1f ns", newSessionNs))
    print(String(format: "    new session, budget spent            %9.1f ns", limitedNs))
}
