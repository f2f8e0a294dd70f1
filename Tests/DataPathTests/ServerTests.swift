import XCTest
import Glibc
@testable import SqutunDataPath
import SqutunSystem
import Shared
import squtun_crypto

/// A server's receiving side in one process, with a real UDP socket on
/// 127.0.0.1 and real OpenSSL (the tuns, the helper and routing are
/// t_server.sh's): which client a datagram is for, what is counted where,
/// when a tun is asked for. Clients are sealers with their own key ids.
final class ServerTests: XCTestCase {
    private func key(_ byte: UInt8) -> SecretBytes {
        [UInt8](repeating: byte, count: 32).withUnsafeBytes { SecretBytes(copying: $0) }
    }

    private func makeServer() throws -> (Server<AES256GCMCipher>, SharedSocket, SocketAddress) {
        let socket = try UDPSocket.open(port: 0, bindAddress: "127.0.0.1")
        let to = socket.localAddress
        // Started a minute ago on both clocks: what clients seal now is not older than the start.
        let start = RunStart(session: 1_000, wallMs: WallClock.nowMs() - 60_000, monotonicMs: MonotonicClock.nowMs() - 60_000)
        let server = try Server<AES256GCMCipher>(net: SharedSocket(socket), start: start, formerSessions: [],
                                                 skewSeconds: 30, keepaliveMs: 0, idleTimeoutMs: 0,
                                                 log: { _, _ in })
        let sender = SharedSocket(try UDPSocket.open(port: 0, bindAddress: "127.0.0.1"))
        return (server, sender, to)
    }

    /// A keepalive of session `session` sealed with `psk` under `keyId`, sent to the server.
    private func send(_ sender: SharedSocket, to: SocketAddress, psk: SecretBytes, keyId: UInt32,
                      session: UInt64 = 2_000, count: Int = 1) throws {
        let sealer = try SuiteSealer<AES256GCMCipher>(algorithms: CryptoAlgorithms(), psk: psk, session: session, keyId: keyId)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
        defer { buffer.deallocate() }
        for _ in 0..<count {
            let n = try sealer.seal(type: .keepalive, payloadLength: 0, packet: buffer, nowMs: WallClock.nowMs())
            XCTAssertTrue(try sender.send(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), to: to))
        }
        usleep(50_000)
    }

    func testEachDatagramGoesToTheClientItsKeyIdNames() throws {
        let (server, sender, to) = try makeServer()
        var asked: [UInt32] = []
        server.requestTun = { keyId, _ in asked.append(keyId); return true }
        try server.add(keyId: 11, name: "alice", key: key(1))
        try server.add(keyId: 22, name: "bob", key: key(2))

        // Alice's genuine keepalive: authenticated for alice only, and she is asked a tun for, once.
        try send(sender, to: to, psk: key(1), keyId: 11, count: 3)
        server.receive()
        XCTAssertEqual(server.client(keyId: 11)?.peer.counters.keepalivesReceived, 3)
        XCTAssertEqual(server.client(keyId: 22)?.peer.counters.keepalivesReceived, 0)
        XCTAssertEqual(asked, [11], "one request while it is unanswered")

        // Sealed with alice's key, claiming bob's key id: bob's MAC fails; nothing for bob.
        try send(sender, to: to, psk: key(1), keyId: 22, session: 3_000, count: 2)
        server.receive()
        let bob = try XCTUnwrap(server.client(keyId: 22))
        XCTAssertEqual(bob.device.counters.dropped(.unknownSender), 2, "bob has no address yet: from elsewhere")
        XCTAssertEqual(bob.peer.counters.keepalivesReceived, 0)
        XCTAssertNil(bob.peer.address)
        XCTAssertEqual(asked, [11])

        // A key id nobody has: counted by the server, no derivation by any client.
        let derivations = (server.client(keyId: 11)!.peer.opener.derivations, bob.peer.opener.derivations)
        try send(sender, to: to, psk: key(3), keyId: 33, count: 5)
        server.receive()
        XCTAssertEqual(server.counters.dropped(.unknownKey), 5)
        XCTAssertEqual(server.client(keyId: 11)!.peer.opener.derivations, derivations.0)
        XCTAssertEqual(bob.peer.opener.derivations, derivations.1)
        // Key id 0 (a point-to-point peer) is no client either.
        try send(sender, to: to, psk: key(1), keyId: 0)
        server.receive()
        XCTAssertEqual(server.counters.dropped(.unknownKey), 6)
    }

    func testARefusedTunIsNotAskedForAgainAtOnce() throws {
        let (server, sender, to) = try makeServer()
        var asked = 0
        server.requestTun = { _, _ in asked += 1; return true }
        try server.add(keyId: 11, name: "alice", key: key(1))
        try send(sender, to: to, psk: key(1), keyId: 11)
        server.receive()
        XCTAssertEqual(server.client(keyId: 11)?.peer.counters.keepalivesReceived, 1, "\(server.client(keyId: 11)!.device.counters.drops)")
        XCTAssertEqual(asked, 1)
        server.refused(keyId: 11)
        try send(sender, to: to, psk: key(1), keyId: 11, count: 3)
        server.receive()
        XCTAssertEqual(asked, 1, "quiet for \(Server<AES256GCMCipher>.retryAfterRefusalMs) ms after a refusal")
    }

    func testARequestThatDidNotGoOutIsMadeAgain() throws {
        let (server, sender, to) = try makeServer()
        var attempts = 0
        server.requestTun = { _, _ in attempts += 1; return attempts > 1 }
        try server.add(keyId: 11, name: "alice", key: key(1))
        try send(sender, to: to, psk: key(1), keyId: 11)
        server.receive()
        try send(sender, to: to, psk: key(1), keyId: 11, count: 2)
        server.receive()
        XCTAssertEqual(attempts, 2, "failed once, made again on the next authenticated datagram, then held")
    }

    func testAForgottenClientIsUnknown() throws {
        let (server, sender, to) = try makeServer()
        server.requestTun = { _, _ in true }
        try server.add(keyId: 11, name: "alice", key: key(1))
        XCTAssertNotNil(server.forget(keyId: 11))
        XCTAssertNil(server.forget(keyId: 11))
        try send(sender, to: to, psk: key(1), keyId: 11)
        server.receive()
        XCTAssertEqual(server.counters.dropped(.unknownKey), 1)
        XCTAssertEqual(server.clientCount, 0)
        // Its slot is used again.
        XCTAssertEqual(try server.add(keyId: 22, name: "bob", key: key(2)), 0)
    }
}
