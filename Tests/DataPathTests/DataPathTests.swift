import XCTest
import SqutunSystem
import SqutunDataPath
import Shared
import squtun_crypto
#if canImport(Glibc)
import Glibc
#endif

/// Two tunnel ends in one process: the data path's steps 2–4 (Device,
/// Peer, Sealer, Opener with OpenSSL) over a fake device and a fake
/// network, with a hand-moved clock. What the e2e tests show with real
/// tun devices and namespaces, here for every drop reason and every
/// schedule, in milliseconds of test time.
final class DataPathTests: XCTestCase {
    let clock = FakeClock()
    let net = FakeNetwork()
    let addrA = address("198.51.100.1", 51820)
    let addrB = address("198.51.100.2", 51820)
    lazy var sessionA = End.session(wallMs: clock.wallMs, low: 0xA)
    lazy var sessionB = End.session(wallMs: clock.wallMs, low: 0xB)

    /// A knows B's address (-p); B learns A's from A's first datagram.
    func makePair(keepaliveMs: UInt64 = 25_000, burstA: UInt64 = DerivationBudget.burst) throws -> (End, End) {
        let a = try End(at: addrA, peer: addrB, session: sessionA, clock: clock, network: net, keepaliveMs: keepaliveMs,
                        derivationBurst: burstA)
        let b = try End(at: addrB, peer: nil, session: sessionB, clock: clock, network: net, keepaliveMs: keepaliveMs)
        return (a, b)
    }

    /// A pair that has exchanged a packet each way.
    func connectedPair(burstA: UInt64 = DerivationBudget.burst) throws -> (End, End) {
        let (a, b) = try makePair(burstA: burstA)
        XCTAssertNil(a.send([ipPacket(60, seed: 1)]))
        b.device.receive()
        XCTAssertNil(b.send([ipPacket(60, seed: 2)]))
        a.device.receive()
        XCTAssertEqual(a.tun.written.count, 1)
        XCTAssertEqual(b.tun.written.count, 1)
        return (a, b)
    }

    /// The datagrams `from` sent, as they left.
    func sent(from: SocketAddress) -> [[UInt8]] { net.sent.filter { $0.from == from }.map(\.bytes) }

    // MARK: Both ways

    func testPacketsArriveByteExactBothWaysAndInOrder() throws {
        let (a, b) = try makePair()
        // More than a batch (64) and a wakeup's worth (4 batches), sizes from 20 to the largest payload.
        let sizes = (0..<300).map { 20 + $0 * 211 % 1480 } + [Sealer.Suite.maxPayloadLength]
        let aToB = sizes.enumerated().map { ipPacket($1, seed: UInt64($0)) }
        XCTAssertNil(a.send(aToB))
        XCTAssertEqual(a.tun.toRead.count, aToB.count - 4 * 64, "one wakeup reads 4 batches (fairness)")
        // The rest waits for the next poll wakeup.
        while !a.tun.toRead.isEmpty { XCTAssertNil(a.device.send()) }
        while !b.socket.inbox.isEmpty { b.device.receive() }
        XCTAssertEqual(b.tun.written, aToB)
        XCTAssertEqual(b.peer.address, addrA, "B learnt A's address from its first authenticated datagram")
        XCTAssertEqual(b.logs, ["peer is \(addrA)"])

        let bToA = (0..<70).map { ipPacket(100 + $0, seed: 1000 + UInt64($0)) }
        XCTAssertNil(b.send(bToA))
        while !a.socket.inbox.isEmpty { a.device.receive() }
        XCTAssertEqual(a.tun.written, bToA)

        XCTAssertEqual(a.status("tx-packets"), String(aToB.count))
        XCTAssertEqual(a.status("tx-bytes"), String(sizes.reduce(0, +)))
        XCTAssertEqual(b.status("rx-packets"), String(aToB.count))
        XCTAssertEqual(b.status("rx-bytes"), String(sizes.reduce(0, +)))
        XCTAssertEqual(a.status("rx-packets"), "70")
        XCTAssertEqual(a.status("peer-session"), String(sessionB))
        XCTAssertEqual(b.status("peer"), "\(addrA)")
        XCTAssertEqual(b.status("peer-changes"), "1")
        for r in DropReason.allCases {
            XCTAssertEqual(a.status("drop-\(r.name)"), "0")
            XCTAssertEqual(b.status("drop-\(r.name)"), "0")
        }
    }

    /// A slot holding several datagrams coalesced by UDP GRO is cut back
    /// into them (the last one shorter), each opened alone.
    func testGROCoalescedDatagramsAreSplitAndEachOpened() throws {
        let (a, b) = try connectedPair()
        b.socket.gro = true
        let packets = (0..<10).map { ipPacket(1200, seed: 50 + UInt64($0)) } + [ipPacket(300, seed: 99)]
        a.send(packets)
        XCTAssertEqual(b.socket.inbox.count, 11)
        b.device.receive()
        XCTAssertEqual(b.socket.coalescedSlots, 1, "the fake handed them over as one GRO slot")
        XCTAssertEqual(Array(b.tun.written.dropFirst()), packets)
    }

    /// Reordered datagrams all arrive (the replay window takes them out of
    /// order); duplicated ones arrive once, the copies dropped as replays.
    func testReorderedArriveAndDuplicatesAreReplays() throws {
        let (a, b) = try connectedPair()
        let packets = (0..<5).map { ipPacket(80, seed: 200 + UInt64($0)) }
        net.hold = true
        a.send(packets)
        net.hold = false
        net.release(reversed: true)
        b.device.receive()
        XCTAssertEqual(Array(b.tun.written.dropFirst()), packets.reversed())
        net.duplicate = true
        a.send(packets)
        b.device.receive()
        XCTAssertEqual(Array(b.tun.written.dropFirst(6)), packets)
        XCTAssertEqual(b.dropped(.replay), 5)
    }

    // MARK: Roaming

    /// B's address changes (a NAT rebinding): A follows on B's first
    /// authenticated datagram from there, says so, and sends there.
    /// Neither a forgery nor a replay from another address moves the peer.
    func testRoamingFollowsAuthenticatedDatagramsOnly() throws {
        let (a, b) = try connectedPair()
        let stranger = address("203.0.113.9", 4000)
        // A replay of B's datagram from elsewhere: dropped, peer stays.
        net.inject(sent(from: addrB)[0], from: stranger, to: addrA)
        // A forgery (B's datagram, one bit changed) from elsewhere.
        var forged = sent(from: addrB)[0]
        forged[forged.count - 1] ^= 1
        net.inject(forged, from: stranger, to: addrA)
        a.device.receive()
        XCTAssertEqual(a.peer.address, addrB)
        XCTAssertEqual(a.dropped(.replay), 1)
        XCTAssertEqual(a.dropped(.unknownSender), 1)
        XCTAssertEqual(a.logs, [])

        let moved = address("198.51.100.77", 33333)
        net.rewriteSender[addrB] = moved
        net.attach(b.socket, at: moved)
        b.send([ipPacket(90, seed: 7)])
        a.device.receive()
        XCTAssertEqual(a.peer.address, moved)
        XCTAssertEqual(a.logs, ["peer moved from \(addrB) to \(moved)"])
        XCTAssertEqual(a.status("peer-changes"), "1")
        XCTAssertEqual(a.status("peer"), "\(moved)")

        a.send([ipPacket(91, seed: 8)])
        XCTAssertEqual(net.sent.last?.to, moved)
        b.device.receive()
        XCTAssertEqual(b.tun.written.last, ipPacket(91, seed: 8))
        // SIGHUP's rule: back to the configured address.
        a.device.forgetLearntAddresses()
        XCTAssertEqual(a.peer.address, addrB)
        XCTAssertEqual(a.logs.last, "SIGHUP: forgetting peer \(moved), back to \(addrB)")
    }

    // MARK: Keepalive

    func testKeepaliveAfterIntervalAndFailedSendsBackOff() throws {
        let (a, b) = try makePair(keepaliveMs: 10_000)
        // At start: at once (a restarted peer learns the new session).
        a.device.sendKeepalivesIfDue()
        XCTAssertEqual(net.sent.count, 1)
        b.device.receive()
        XCTAssertEqual(b.status("keepalives-received"), "1")
        XCTAssertEqual(b.tun.written, [], "a keepalive writes nothing to the device")
        XCTAssertEqual(b.peer.address, addrA)
        XCTAssertEqual(b.device.pollTimeout(), 0, "B, now with a peer, is due its first keepalive at once")
        XCTAssertEqual(a.device.pollTimeout(), 10_000)

        clock.advance(ms: 9_999)
        a.device.sendKeepalivesIfDue()
        XCTAssertEqual(net.sent.count, 1)
        XCTAssertEqual(a.device.pollTimeout(), 1)
        clock.advance(ms: 1)
        a.device.sendKeepalivesIfDue()
        XCTAssertEqual(net.sent.count, 2)
        XCTAssertEqual(a.status("keepalives-sent"), "2")
        // Data counts as something sent: no keepalive one interval after it.
        clock.advance(ms: 5_000)
        a.send([ipPacket(40, seed: 1)])
        clock.advance(ms: 9_999)
        a.device.sendKeepalivesIfDue()
        XCTAssertEqual(net.sent.count, 3)
        clock.advance(ms: 1)
        a.device.sendKeepalivesIfDue()
        XCTAssertEqual(net.sent.count, 4)

        // The link goes down: retried 1, 2, 4 intervals after each attempt, logged once.
        net.sendFailure = Errno(ENETUNREACH)
        clock.advance(ms: 10_000)
        var attempts: [UInt64] = []
        var start = clock.monotonicMs
        for _ in 0..<80_000 / 500 {
            let before = net.attempts
            a.device.sendKeepalivesIfDue()
            if net.attempts != before { attempts.append(clock.monotonicMs - start); start = clock.monotonicMs }
            XCTAssertGreaterThan(a.device.pollTimeout(), 0, "a failing send never makes poll return at once")
            clock.advance(ms: 500)
        }
        XCTAssertEqual(attempts, [0, 10_000, 20_000, 40_000])
        XCTAssertEqual(a.status("send-errors"), "4")
        XCTAssertEqual(a.logs.filter { $0.hasPrefix("cannot send to peer") }.count, 1)
        XCTAssertEqual(a.logs.last, "cannot send to peer \(addrB): \(Errno(ENETUNREACH)) "
                       + "(counted as send-errors; logged again when it works)")
        // Data fails too (counted), then the link is back.
        a.send([ipPacket(40, seed: 2)])
        XCTAssertEqual(a.status("send-errors"), "5")
        net.sendFailure = nil
        a.send([ipPacket(40, seed: 3)])
        XCTAssertEqual(a.logs.last, "sending to peer \(addrB) works again (5 datagrams could not be sent)")
        XCTAssertEqual(a.device.pollTimeout(), 10_000, "the backoff ends with the first datagram out")
    }

    // MARK: Restart

    /// B restarts (a new, greater session, the old one among its former
    /// sessions): A accepts the new session from the same address at once;
    /// the old session's datagrams are refused on both sides.
    func testRestartedPeerIsAcceptedAndTheOldSessionRefused() throws {
        let (a, b) = try connectedPair()
        b.send([ipPacket(70, seed: 3)])
        let oldB = sent(from: addrB)
        a.device.receive()
        clock.advance(ms: 3_000)
        let newSession = End.session(wallMs: clock.wallMs, low: 0xB2)
        let b2 = try End(at: addrB, peer: addrA, session: newSession, clock: clock, network: net,
                         formerSessions: [sessionB])
        b2.device.sendKeepalivesIfDue()
        b2.send([ipPacket(71, seed: 4)])
        a.device.receive()
        XCTAssertEqual(a.status("peer-session"), String(newSession))
        XCTAssertEqual(a.tun.written.last, ipPacket(71, seed: 4))
        XCTAssertEqual(a.logs, [], "same address: no move")

        a.send([ipPacket(72, seed: 5)])
        b2.device.receive()
        XCTAssertEqual(b2.tun.written, [ipPacket(72, seed: 5)])

        let aWritten = a.tun.written
        for d in oldB { net.inject(d, from: addrB, to: addrA) }
        a.device.receive()
        XCTAssertEqual(a.dropped(.oldSession), UInt64(oldB.count))
        XCTAssertEqual(a.tun.written, aWritten)
        // At B's new run its own former session's datagrams count as reflected.
        net.inject(oldB[0], from: addrA, to: addrB)
        b2.device.receive()
        XCTAssertEqual(b2.dropped(.reflected), 1)
        XCTAssertEqual(b2.tun.written.count, 1)
    }

    // MARK: Every drop reason

    func testEveryDropReasonIsProducedCountedAndNothingForgedReachesTheDevice() throws {
        let (a, b) = try connectedPair(burstA: 3)
        let stranger = address("203.0.113.9", 4000)
        let aWritten = a.tun.written
        let genuine = sent(from: addrB)[0]
        let alg = try CryptoAlgorithms()
        func sealed(_ sealer: Sealer, at ms: UInt64, payload: [UInt8] = ipPacket(60, seed: 5)) throws -> [UInt8] {
            var buf = [UInt8](repeating: 0, count: Wire.packetLength(payload: payload.count))
            let n = try buf.withUnsafeMutableBytes { p -> Int in
                (p.baseAddress! + Sealer.Suite.payloadStart).copyMemory(from: payload, byteCount: payload.count)
                return try sealer.seal(type: .data, payloadLength: payload.count, packet: p, nowMs: ms)
            }
            return Array(buf[0..<n])
        }
        func deliver(_ bytes: [UInt8], from: SocketAddress) {
            net.inject(bytes, from: from, to: addrA)
            a.device.receive()
        }
        var expected = [DropReason: UInt64]()

        // malformed: too short for a header; and a genuine datagram whose
        // payload is no IP packet (B's device handed it over, B sealed it).
        deliver([1, 2, 3], from: addrB)
        b.send([[UInt8](repeating: 0x11, count: 40)])
        a.device.receive()
        expected[.malformed] = 2
        // reflected: A's own datagram sent back to it.
        deliver(sent(from: addrA)[0], from: addrB)
        expected[.reflected] = 1
        // old-session: sealed with the psk but a session older than B's.
        deliver(try sealed(Sealer(algorithms: alg, psk: End.psk(), session: sessionB - (1 << 24)), at: clock.wallMs),
                from: addrB)
        expected[.oldSession] = 1
        // bad-mac: B's datagram with one bit changed, from B's address.
        var tampered = genuine
        tampered[40] ^= 0x80
        deliver(tampered, from: addrB)
        expected[.badMAC] = 1
        // unknown-sender: the same from elsewhere.
        deliver(tampered, from: stranger)
        expected[.unknownSender] = 1
        // time-skew: B's session, sealed an hour off (the skew allowed is 30 s).
        deliver(try sealed(Sealer(algorithms: alg, psk: End.psk(), session: sessionB), at: clock.wallMs - 3_600_000),
                from: addrB)
        expected[.timeSkew] = 1
        // replay: B's genuine datagram again.
        deliver(genuine, from: addrB)
        expected[.replay] = 1
        // rate-limited: new sessions under another key, from a stranger: a
        // derivation each (unknown-sender) until A's budget (3 here; B's
        // session came from B's configured address, which costs none) is out.
        for k in 1...4 {
            let wrongKey = try Sealer(algorithms: alg, psk: End.psk(0x99), session: sessionB + UInt64(k) << 24)
            deliver(try sealed(wrongKey, at: clock.wallMs), from: stranger)
        }
        expected[.unknownSender]! += 3
        expected[.rateLimited] = 1
        // Check 1a-1d, each many times: counted every time, said once.
        let flood = 40
        // old-version: a version 1 datagram.
        var v1 = genuine
        v1[Wire.offsetVersion] = 1
        for _ in 0..<flood { deliver(v1, from: addrB) }
        expected[.oldVersion] = UInt64(flood)
        // wrong-suite: a datagram of an AES-256-GCM end with the same key and session.
        let gcm = try SuiteSealer<AES256GCMCipher>(algorithms: alg, psk: End.psk(), session: sessionB)
        let gcmDatagram = try Self.sealed(gcm, at: clock.wallMs)
        for _ in 0..<flood { deliver(gcmDatagram, from: addrB) }
        expected[.wrongSuite] = UInt64(flood)
        // wrong-mode: B's datagram marked as carrying an Ethernet frame.
        var tap = genuine
        tap[Wire.offsetFlags] = Wire.flagEthernet
        for _ in 0..<flood { deliver(tap, from: addrB) }
        expected[.wrongMode] = UInt64(flood)
        // unknown-key: a key id other than 0 (point-to-point).
        var keyed = genuine
        keyed[Wire.offsetKeyId + 3] = 1
        for _ in 0..<flood { deliver(keyed, from: addrB) }
        expected[.unknownKey] = UInt64(flood)

        for r in DropReason.allCases {
            XCTAssertEqual(a.dropped(r), expected[r] ?? 0, r.name)
            XCTAssertEqual(a.status("drop-\(r.name)"), String(expected[r] ?? 0), r.name)
            XCTAssertGreaterThan(a.dropped(r), 0, "\(r.name) produced through the data path")
        }
        XCTAssertEqual(a.tun.written, aWritten, "nothing forged reaches the device")
        XCTAssertEqual(a.peer.address, addrB)
        XCTAssertEqual(a.status("peer-session"), String(sessionB))
        // One line each for old-version, wrong-suite and wrong-mode, whatever
        // the count; the other reasons are counted only.
        XCTAssertEqual(a.logs, [
            "peer speaks protocol v1 (an older squtun); this end speaks v2: upgrade the peer "
                + "(datagrams from \(addrB) dropped as old-version; said once)",
            "peer uses aes-256-gcm, this end aes-256-cbc-hmac-sha256 (datagrams from \(addrB) dropped as wrong-suite; "
                + "said once)",
            "peer sends Ethernet frames (TAP mode), this end IP packets (TUN mode) (datagrams from \(addrB) dropped "
                + "as wrong-mode; said once)",
        ])
        // Genuine traffic still flows.
        b.send([ipPacket(64, seed: 77)])
        a.device.receive()
        XCTAssertEqual(a.tun.written.last, ipPacket(64, seed: 77))
    }

    // MARK: Local drops

    func testNoPeerOversizeAndDeviceErrorsAreCounted() throws {
        let lonely = try End(at: addrB, peer: nil, session: sessionB, clock: clock, network: net)
        lonely.send([ipPacket(60, seed: 1), ipPacket(61, seed: 2)])
        XCTAssertEqual(lonely.status("no-peer"), "2")
        XCTAssertEqual(lonely.status("tx-packets"), "0")
        XCTAssertEqual(net.sent.count, 0)
        XCTAssertEqual(lonely.device.pollTimeout(), -1, "no peer, no keepalive: poll waits")

        let (a, b) = try connectedPair()
        let before = net.sent.count
        let tooLong = Sealer.Suite.maxPayloadLength + 1
        a.send([ipPacket(tooLong, seed: 3), ipPacket(tooLong + 50, seed: 4), ipPacket(100, seed: 5)])
        XCTAssertEqual(a.status("tx-oversize"), "2")
        XCTAssertEqual(net.sent.count, before + 1, "only the packet that fits went")
        XCTAssertEqual(a.logs, ["dropped a \(tooLong)-byte packet read from sq0: longer than the largest payload "
                                + "squtun can send (\(Sealer.Suite.maxPayloadLength) bytes); set the MTU of sq0 to "
                                + "\(Sealer.Suite.maxPayloadLength) or less (tx-oversize)"],
                       "said once a minute")

        b.device.receive()
        XCTAssertEqual(b.tun.written.last, ipPacket(100, seed: 5))
        b.tun.refuseWrites = true
        a.send([ipPacket(100, seed: 6)])
        b.device.receive()
        XCTAssertEqual(b.status("tun-write-errors"), "1")
        XCTAssertEqual(b.status("rx-packets"), "2")
        b.tun.gone = "tun device sq0 is gone (test)"
        XCTAssertEqual(b.send([ipPacket(100, seed: 7)]), "tun device sq0 is gone (test)")
    }

    /// The device I/O's link-layer offset: the IP header the oversize line
    /// reads its length from sits behind it (a TAP device's 14 bytes).
    func testOversizeLengthIsReadBehindTheLinkLayerHeader() throws {
        let (a, _) = try connectedPair()
        a.tun.linkLayerOffset = 14
        var frame = [UInt8](repeating: 0xee, count: 12) + [0x08, 0x00] + ipPacket(Sealer.Suite.maxPayloadLength, seed: 9)
        frame[14 + 2] = 0xff  // the IP header says 65535 bytes: the read was cut
        frame[14 + 3] = 0xff
        a.send([frame])
        XCTAssertEqual(a.status("tx-oversize"), "1")
        XCTAssertTrue(a.logs.last?.hasPrefix("dropped a \(14 + 65535)-byte packet read from sq0") == true,
                      a.logs.last ?? "no line")
        // The MTU the line asks for leaves room for the frame's header.
        XCTAssertTrue(a.logs.last?.hasSuffix("set the MTU of sq0 to \(Sealer.Suite.maxPayloadLength - 14) or less "
                                             + "(tx-oversize)") == true, a.logs.last ?? "no line")
    }

    /// A frame that is not IPv4 or IPv6 (its EtherType says another
    /// protocol): no IP length field to believe, the read's length is said.
    func testOversizeFrameOfAnotherProtocolSaysItsReadLength() throws {
        let (a, _) = try connectedPair()
        a.tun.linkLayerOffset = 14
        var frame = [UInt8](repeating: 0xee, count: 14) + ipPacket(Sealer.Suite.maxPayloadLength, seed: 9)
        frame[14 + 2] = 0xff  // would say 65535 bytes, were it an IP header
        frame[14 + 3] = 0xff
        a.send([frame])
        XCTAssertEqual(a.status("tx-oversize"), "1")
        XCTAssertTrue(a.logs.last?.hasPrefix("dropped a \(frame.count)-byte packet read from sq0") == true,
                      a.logs.last ?? "no line")
    }

    /// One wakeup's send round reads 4 batches' worth of payloads, then
    /// only finishes the super-packet it is cutting: the socket gets its
    /// turn, and no piece is left behind without a poll wakeup to fetch it.
    func testASendRoundIsBoundedAndFinishesTheSuperPacketBegun() throws {
        let (a, b) = try connectedPair()
        a.tun.superSize = 40
        let packets = (0..<400).map { ipPacket(200, seed: 300 + UInt64($0)) }
        XCTAssertNil(a.send(packets))
        // 256 read, in the middle of the 7th super-packet: its last 24 too.
        XCTAssertEqual(a.tun.toRead.count, 400 - 7 * 40)
        XCTAssertFalse(a.tun.hasPending)
        while !a.tun.toRead.isEmpty { XCTAssertNil(a.device.send()) }
        while !b.socket.inbox.isEmpty { b.device.receive() }
        XCTAssertEqual(Array(b.tun.written.dropFirst()), packets)
    }

    /// A datagram of `sealer`'s suite carrying `payload`.
    static func sealed<C: SuiteCipher>(_ sealer: SuiteSealer<C>, at ms: UInt64,
                                       payload: [UInt8] = ipPacket(60, seed: 5)) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: C.Suite.packetLength(payload: payload.count))
        let n = try buf.withUnsafeMutableBytes { p -> Int in
            (p.baseAddress! + C.Suite.payloadStart).copyMemory(from: payload, byteCount: payload.count)
            return try C.seal(p, with: sealer, type: .data, payloadLength: payload.count, nowMs: ms)
        }
        return Array(buf[0..<n])
    }
}
