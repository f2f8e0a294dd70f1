import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// Each socket is closed by its owner, the test's local, at the end of the test.
final class UDPSocketTests: XCTestCase {
    private func open(port: UInt16 = 0, bind: String? = nil) throws -> UDPSocket {
        try UDPSocket.open(port: port, bindAddress: bind)
    }

    private func option(_ s: borrowing UDPSocket, _ level: Int32, _ name: Int32) -> Int32 {
        var value: Int32 = -1
        var size = socklen_t(4)
        XCTAssertEqual(getsockopt(s.fd.rawValue, level, name, &value, &size), 0)
        return value
    }

    private func waitReadable(_ s: borrowing UDPSocket) -> Bool {
        var p = pollfd(fd: s.fd.rawValue, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 2000) == 1
    }

    func testBindIPv4Loopback() throws {
        let s = try open(bind: "127.0.0.1")
        XCTAssertEqual(s.family, .ipv4)
        XCTAssertEqual(s.localAddress.host, "127.0.0.1")
        XCTAssertNotEqual(s.localAddress.port, 0)
        XCTAssertTrue(s.fd.isNonBlocking)
        XCTAssertTrue(s.fd.isCloseOnExec)
    }

    func testDefaultIsDualStack() throws {
        let s = try open()
        XCTAssertEqual(s.family, .ipv6)
        XCTAssertEqual(option(s, Int32(IPPROTO_IPV6), IPV6_V6ONLY), 0)
        XCTAssertEqual(s.localAddress.host, "::")
    }

    func testBufferSizesAsRoot() throws {
        try XCTSkipIf(geteuid() != 0, "SO_RCVBUFFORCE needs root")
        let s = try open()
        // The kernel reports double the granted size.
        XCTAssertGreaterThanOrEqual(s.receiveBufferBytes, Int(UDPSocket.bufferBytes))
        XCTAssertGreaterThanOrEqual(Int(option(s, SOL_SOCKET, SO_SNDBUF)), Int(UDPSocket.bufferBytes))
    }

    func testSendReceiveOnLoopback() throws {
        let a = try open(bind: "127.0.0.1")
        let b = try open(bind: "127.0.0.1")
        var empty = [UInt8](repeating: 0, count: 64)
        XCTAssertNil(try empty.withUnsafeMutableBytes { try b.receive(into: $0) }, "nothing queued yet")
        let payload: [UInt8] = Array(0..<200).map { UInt8($0) }
        XCTAssertTrue(try payload.withUnsafeBytes { try a.send($0.baseAddress!, count: $0.count, to: b.localAddress) })
        XCTAssertTrue(waitReadable(b))
        var buffer = [UInt8](repeating: 0, count: 2048)
        let got = try XCTUnwrap(try buffer.withUnsafeMutableBytes { try b.receive(into: $0) })
        XCTAssertEqual(got.count, 200)
        XCTAssertEqual(Array(buffer[0..<200]), payload)
        XCTAssertEqual(got.from, a.localAddress)
        XCTAssertEqual(got.from.description, "127.0.0.1:\(a.localAddress.port)")
    }

    func testIPv4PeerOnDualStackSocket() throws {
        let v4 = try open(bind: "127.0.0.1")
        let dual = try open()
        let target = try XCTUnwrap(SocketAddress.parse(literal: "127.0.0.1", port: dual.localAddress.port))
        XCTAssertTrue(try Array("hi".utf8).withUnsafeBytes { try v4.send($0, to: target) })
        XCTAssertTrue(waitReadable(dual))
        var buffer = [UInt8](repeating: 0, count: 64)
        let got = try XCTUnwrap(try buffer.withUnsafeMutableBytes { try dual.receive(into: $0) })
        // Reported unmapped, so it matches the configured IPv4 peer.
        XCTAssertEqual(got.from.family, .ipv4)
        XCTAssertEqual(got.from, v4.localAddress)
        // And the dual-stack socket can answer an IPv4 peer (sent as ::ffff:127.0.0.1).
        XCTAssertTrue(try Array("yo".utf8).withUnsafeBytes { try dual.send($0, to: got.from) })
        XCTAssertTrue(waitReadable(v4))
        let back = try XCTUnwrap(try buffer.withUnsafeMutableBytes { try v4.receive(into: $0) })
        XCTAssertEqual(back.count, 2)
        XCTAssertEqual(back.from.port, dual.localAddress.port)
    }

    func testIPv6Loopback() throws {
        let a = try open(bind: "::1")
        let b = try open()
        XCTAssertEqual(a.family, .ipv6)
        XCTAssertEqual(option(a, Int32(IPPROTO_IPV6), IPV6_V6ONLY), 1, "an explicit IPv6 bind is IPv6-only")
        let target = try XCTUnwrap(SocketAddress.parse(literal: "::1", port: b.localAddress.port))
        XCTAssertTrue(try Array("v6".utf8).withUnsafeBytes { try a.send($0, to: target) })
        XCTAssertTrue(waitReadable(b))
        var buffer = [UInt8](repeating: 0, count: 64)
        let got = try XCTUnwrap(try buffer.withUnsafeMutableBytes { try b.receive(into: $0) })
        XCTAssertEqual(got.from.description, "[::1]:\(a.localAddress.port)")
    }

    func testIPv6PeerOnIPv4SocketIsRefused() throws {
        let s = try open(bind: "127.0.0.1")
        let v6 = try XCTUnwrap(SocketAddress.parse(literal: "::1", port: 9))
        XCTAssertThrowsError(try Array("x".utf8).withUnsafeBytes { try s.send($0, to: v6) }) { error in
            XCTAssertEqual(error as? Errno, Errno(EAFNOSUPPORT))
        }
    }

    /// A server client's own socket: bound beside the main one (a shared
    /// port) and connected to the client, it gets that address's datagrams,
    /// the main socket everyone else's; connected elsewhere, it follows.
    func testClientSocketTakesItsClientsDatagrams() throws {
        for bind in ["127.0.0.1", nil] {
            let main = try UDPSocket.open(port: 0, bindAddress: bind, sharedPort: true)
            XCTAssertEqual(option(main, SOL_SOCKET, SO_REUSEPORT), 1)
            let port = main.localAddress.port
            let server = try XCTUnwrap(SocketAddress.parse(literal: "127.0.0.1", port: port))
            let alice = try open(bind: "127.0.0.1"), bob = try open(bind: "127.0.0.1")
            let own = try UDPSocket.openClientSocket(like: main.clientSocketTemplate, connectedTo: alice.localAddress)
            XCTAssertEqual(own.family, main.family, "\(bind ?? "dual-stack")")
            XCTAssertEqual(own.localAddress.port, port)
            var buffer = [UInt8](repeating: 0, count: 64)
            func arrives(_ from: borrowing UDPSocket, _ byte: UInt8, at s: borrowing UDPSocket,
                         not other: borrowing UDPSocket) throws {
                XCTAssertTrue(try withUnsafeBytes(of: byte) { b throws(Errno) in try from.send(b, to: server) })
                XCTAssertTrue(waitReadable(s), "\(byte) did not arrive where it should")
                let got = try buffer.withUnsafeMutableBytes { try s.receive(into: $0) }
                XCTAssertEqual(got?.count, 1)
                XCTAssertEqual(buffer[0], byte)
                XCTAssertEqual(got?.from, from.localAddress)
                XCTAssertNil(try buffer.withUnsafeMutableBytes { try other.receive(into: $0) }, "\(byte) also elsewhere")
            }
            for i in 0..<20 {
                try arrives(alice, UInt8(i), at: own, not: main)
                try arrives(bob, UInt8(100 + i), at: main, not: own)
            }
            // Alice roams to bob's address (as far as the sockets can tell).
            try own.connect(to: bob.localAddress)
            for i in 0..<20 {
                try arrives(bob, UInt8(i), at: own, not: main)
                try arrives(alice, UInt8(100 + i), at: main, not: own)
            }
        }
    }

    /// Without a shared port on the main socket, no client socket can join it.
    func testClientSocketNeedsTheSharedPort() throws {
        let main = try open(bind: "127.0.0.1")
        let peer = try open(bind: "127.0.0.1")
        XCTAssertThrowsError(try UDPSocket.openClientSocket(like: main.clientSocketTemplate,
                                                             connectedTo: peer.localAddress).close())
    }

    func testPortInUse() throws {
        let first = try open()
        let port = first.localAddress.port
        XCTAssertThrowsError(try open(port: port).close()) { error in
            XCTAssertEqual(error as? SystemError, .portInUse(port: port, errno: Errno(EADDRINUSE)))
            XCTAssertEqual("\(error)", "UDP port \(port) is already in use (bind: Address already in use); see what holds it with: ss -ulpn 'sport = :\(port)', or choose another port with -l")
        }
        // The dual-stack wildcard also holds the IPv4 side of the port.
        XCTAssertThrowsError(try open(port: port, bind: "127.0.0.1").close()) { error in
            XCTAssertEqual(error as? SystemError, .portInUse(port: port, errno: Errno(EADDRINUSE)))
        }
        first.close()
    }

    func testBadBindAddresses() {
        XCTAssertThrowsError(try open(bind: "not-an-ip").close()) { error in
            XCTAssertEqual(error as? SystemError, .badBindAddress("not-an-ip"))
            XCTAssertTrue("\(error)".hasPrefix("-b 'not-an-ip': not a numeric IPv4 or IPv6 address"), "\(error)")
        }
        XCTAssertThrowsError(try open(bind: "192.0.2.77").close()) { error in
            XCTAssertEqual(error as? SystemError, .bindFailed(address: "192.0.2.77", port: 0, errno: Errno(EADDRNOTAVAIL)))
            XCTAssertTrue("\(error)".contains("cannot bind UDP port 0 on 192.0.2.77 (bind: Cannot assign requested address)"))
        }
    }

    func testAdoptingKeepsTheFamily() throws {
        let v4 = try open(bind: "127.0.0.1")
        let dual = try open()
        // Each adopting owner closes its own duplicate.
        XCTAssertEqual(try UDPSocket(adopting: v4.fd.duplicate()).family, .ipv4)
        XCTAssertEqual(try UDPSocket(adopting: dual.fd.duplicate()).family, .ipv6)
        XCTAssertThrowsError(try UDPSocket(adopting: FileDescriptor(rawValue: -1)).close())
        // Not a socket: refused, and closed all the same (the fd was handed over).
        let notASocket = try FileDescriptor.open("/dev/null", O_RDONLY)
        XCTAssertThrowsError(try UDPSocket(adopting: notASocket).close())
        XCTAssertTrue(notASocket.isClosed, "a refused adoption leaked the fd")
    }

    // MARK: Ownership

    /// The socket closes its fd when its owner goes out of scope.
    func testOwnerClosesItsFdWhenItGoesAway() throws {
        let number: FileDescriptor
        do {
            let s = try open(bind: "127.0.0.1")
            number = s.fd
            XCTAssertFalse(number.isClosed)
        }
        XCTAssertTrue(number.isClosed, "the dropped socket's fd is still open")
        let closed: FileDescriptor
        do {
            let s = try open(bind: "127.0.0.1")
            closed = s.fd
            s.close()
            XCTAssertTrue(closed.isClosed)
        }
        XCTAssertTrue(closed.isClosed)
    }

    /// Handing the socket over (as the helper does before sending it to
    /// the worker) ends the owner without closing: the fd stays open and
    /// bound for the new owner, which closes it in its turn.
    func testReleaseHandsTheOpenFdOver() throws {
        let handed: FileDescriptor
        let address: SocketAddress
        do {
            let s = try open(bind: "127.0.0.1")
            address = s.localAddress
            handed = s.release()
        }
        XCTAssertFalse(handed.isClosed, "the released owner closed the fd it handed over")
        do {
            let adopted = try UDPSocket(adopting: handed)
            XCTAssertEqual(adopted.localAddress, address, "the same bound socket")
            let peer = try open(bind: "127.0.0.1")
            XCTAssertTrue(try Array("still open".utf8).withUnsafeBytes { try peer.send($0, to: address) })
            XCTAssertTrue(waitReadable(adopted))
        }
        XCTAssertTrue(handed.isClosed, "the new owner did not close it")
    }

    // MARK: Batches

    /// A batch whose slot i holds `sizes[i]` bytes of the pattern i.
    private func batch(_ sizes: [Int]) -> DatagramBatch {
        let b = DatagramBatch(capacity: sizes.count)
        for (i, n) in sizes.enumerated() {
            b.slot(i).baseAddress!.initializeMemory(as: UInt8.self, repeating: UInt8(i), count: n)
            b.lengths[i] = UInt32(n)
        }
        return b
    }

    /// Everything waiting at `s`, as (datagram lengths, how many came coalesced by GRO).
    private func drain(_ s: borrowing UDPSocket) throws -> (lengths: [Int], coalesced: Int) {
        let rx = DatagramBatch(capacity: 16)
        var lengths: [Int] = []
        var coalesced = 0
        _ = waitReadable(s)
        while true {
            let n = try s.receiveBatch(rx)
            if n == 0 { return (lengths, coalesced) }
            for i in 0..<n {
                let total = Int(rx.lengths[i]), segment = Int(rx.gsoSizes[i])
                if segment == 0 || total <= segment { lengths.append(total); continue }
                coalesced += 1
                var left = total
                while left > 0 { lengths.append(min(segment, left)); left -= segment }
            }
        }
    }

    /// An error after a GSO run went out: the run is counted as sent, the
    /// error reported for the rest (it used to turn the whole batch into
    /// errors). Here the error is EMSGSIZE: a datagram over IPv4's limit.
    func testAnErrorAfterAGSORunKeepsWhatWasSent() throws {
        let a = try open(bind: "127.0.0.1")
        let b = try open(bind: "127.0.0.1")
        let tx = batch([1000, 1000, 1000, 65_520, 1000])
        let result = a.sendBatch(tx, count: 5, to: b.localAddress, gso: true)
        XCTAssertEqual(result, BatchSend(sent: 3, failure: Errno(EMSGSIZE), gsoSends: 1, gsoRefused: false))
        XCTAssertEqual(try drain(b).lengths, [1000, 1000, 1000], "what was counted sent arrived")
        // The same by sendmmsg: the datagrams before the bad one count.
        let plain = a.sendBatch(batch([200, 300, 65_520, 400]), count: 4, to: b.localAddress, gso: false)
        XCTAssertEqual(plain, BatchSend(sent: 2, failure: Errno(EMSGSIZE)))
        XCTAssertEqual(try drain(b).lengths, [200, 300])
        // A path error before anything went: nothing sent, the error said.
        let v6 = try XCTUnwrap(SocketAddress.parse(literal: "::1", port: 9))
        XCTAssertEqual(a.sendBatch(tx, count: 3, to: v6, gso: true), BatchSend(sent: 0, failure: Errno(EAFNOSUPPORT)))
    }

    /// A kernel refusal of GSO (EINVAL, here caused with SO_NO_CHECK, as
    /// udp_send_skb refuses GSO without checksums) sends the datagrams one
    /// by one and pauses GSO, which is tried again 1 s later, then 2 s …,
    /// and used again once it works (it used to be off for good).
    func testARefusedGSOSendGoesOneByOneAndGSOIsTriedAgainLater() throws {
        let a = try open(bind: "127.0.0.1")
        let b = try open(bind: "127.0.0.1")
        let tx = batch([1200, 1200, 1200, 700])
        var schedule = GSOSchedule()
        var on: Int32 = 1
        XCTAssertEqual(setsockopt(a.fd.rawValue, SOL_SOCKET, SO_NO_CHECK, &on, 4), 0)

        XCTAssertTrue(schedule.allowed(nowMs: 10_000))
        let refused = a.sendBatch(tx, count: 4, to: b.localAddress, gso: true)
        XCTAssertEqual(refused, BatchSend(sent: 4, failure: nil, gsoSends: 0, gsoRefused: true))
        XCTAssertEqual(try drain(b).lengths, [1200, 1200, 1200, 700], "all went, one by one")
        schedule.update(refused, nowMs: 10_000)
        XCTAssertFalse(schedule.allowed(nowMs: 10_999), "paused for 1 s")
        XCTAssertTrue(schedule.allowed(nowMs: 11_000), "then tried again")
        // Still refused: the next pause is longer.
        schedule.update(a.sendBatch(tx, count: 4, to: b.localAddress, gso: true), nowMs: 11_000)
        XCTAssertFalse(schedule.allowed(nowMs: 12_999))
        XCTAssertTrue(schedule.allowed(nowMs: 13_000))
        _ = try drain(b)

        // The cause gone, the retry works: one super-datagram again.
        on = 0
        XCTAssertEqual(setsockopt(a.fd.rawValue, SOL_SOCKET, SO_NO_CHECK, &on, 4), 0)
        let again = a.sendBatch(tx, count: 4, to: b.localAddress, gso: schedule.allowed(nowMs: 13_000))
        XCTAssertEqual(again, BatchSend(sent: 4, failure: nil, gsoSends: 1, gsoRefused: false))
        let got = try drain(b)
        XCTAssertEqual(got.lengths, [1200, 1200, 1200, 700])
        XCTAssertEqual(got.coalesced, 1, "sent as one GSO super-datagram (received whole with UDP_GRO)")
        schedule.update(again, nowMs: 13_000)
        XCTAssertEqual(schedule.retryMs, GSOSchedule.firstRetryMs, "working GSO ends the backoff")
        // The pause never grows past a minute.
        for t in 0..<20 { schedule.update(BatchSend(sent: 1, gsoRefused: true), nowMs: UInt64(t)) }
        XCTAssertEqual(schedule.retryMs, GSOSchedule.maxRetryMs)
    }
}

/// The helper's check of what a worker says it closed.
final class ProcessFilesTests: XCTestCase {
    func testHoldsSocketFollowsTheDescriptor() throws {
        var inode: UInt64 = 0
        do {
            let s = try UDPSocket.open(port: 0, bindAddress: "127.0.0.1")
            inode = try XCTUnwrap(ProcessFiles.socketInode(s.fd))
            XCTAssertTrue(ProcessFiles.holdsSocket(pid: getpid(), inode: inode))
            XCTAssertFalse(ProcessFiles.holdsSocket(pid: getpid(), inode: inode + 1))
        }
        XCTAssertFalse(ProcessFiles.holdsSocket(pid: getpid(), inode: inode), "closed with its owner")
        XCTAssertFalse(ProcessFiles.holdsSocket(pid: -1, inode: inode), "no such process")
    }
}
