import XCTest
import Shared
import SqutunConfig
@testable import SqutunSystem
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// The setup consumes the settings' list of peers: each peer's key file is
/// read and its host resolved; more peers than the data path runs are refused.
final class SetupTests: XCTestCase {
    private var dir = ""
    private var devices: [String] = []

    override func setUp() {
        super.setUp()
        dir = TestSupport.makeTemporaryDirectory()
    }

    override func tearDown() {
        for name in devices {
            TestSupport.ip("link", "del", name)
            XCTAssertFalse(TestSupport.interfaceExists(name), "could not delete \(name)")
        }
        devices = []
        TestSupport.removeTree(dir)
        super.tearDown()
    }

    private func settings(_ peers: [PeerSettings], interface: String = "sqst0") -> TunnelConfig {
        TunnelConfig(localPort: 0, peers: peers, interface: interface, keepaliveSeconds: 0, skewSeconds: 30,
                     bindAddress: "127.0.0.1", foreground: true, user: "squtun", chrootDirectory: "/",
                     pidfile: dir + "/t.pid", controlSocket: dir + "/t.sock", offload: false)
    }

    /// An unprivileged prepare, for what it throws (a result is dropped at
    /// once: its tun and socket close).
    private func prepare(_ config: TunnelConfig) throws {
        _ = try Prepared.prepare(config, privileged: false)
    }

    /// A fresh key in a 0600 file; returns its path and the key's bytes.
    private func makeKey(_ name: String) throws -> (path: String, key: [UInt8]) {
        let key = try KeyFile.generate()
        let path = dir + "/" + name
        try KeyFile.create(path: path, text: KeyFile.encode(key))
        return (path, key.withUnsafeBytes { Array($0) })
    }

    func testTheKeyFileReadIsThePeers() {
        let missing = dir + "/peer0.key"
        XCTAssertThrowsError(try prepare(settings([PeerSettings(host: nil, port: 3456, keyPath: missing)]))) {
            XCTAssertEqual($0 as? ConfigError, .keyFileUnreadable(path: missing, reason: "No such file or directory"))
        }
    }

    func testMorePeersThanTheDataPathRunsAreRefused() throws {
        let a = try makeKey("a.key"), b = try makeKey("b.key")
        let two = settings([PeerSettings(host: "127.0.0.1", port: 9, keyPath: a.path),
                            PeerSettings(host: "127.0.0.1", port: 10, keyPath: b.path)])
        XCTAssertThrowsError(try prepare(two)) {
            XCTAssertEqual(($0 as? PrivsepError)?.description, "2 peers configured; a tunnel runs at most 1")
        }
    }

    func testEachPeerIsMadeReady() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to create a tun device")
        let name = TestSupport.uniqueName("sqst")
        devices.append(name)
        let made = TestSupport.run("/usr/sbin/ip", ["tuntap", "add", "dev", name, "mode", "tun"])
        try XCTSkipUnless(TestSupport.interfaceExists(name), "ip tuntap add failed: \(made.output)")
        let key = try makeKey("peer.key")
        let config = settings([PeerSettings(host: "127.0.0.1", port: 9, keyPath: key.path)], interface: name)
        let p = try Prepared.prepare(config, privileged: false)
        // (Its tun and socket close with it, at the end of the test.)
        defer { p.peers.forEach { $0.keyFileShare?.close() } }
        XCTAssertEqual(p.peers.map(\.settings), config.peers)
        XCTAssertEqual(p.peers.map { $0.psk.withUnsafeBytes { Array($0) } }, [key.key])
        XCTAssertEqual(p.peers.map(\.address), [SocketAddress.parse(literal: "127.0.0.1", port: 9)])
        // The one-peer view the helper and the single process use.
        XCTAssertEqual(p.psk.withUnsafeBytes { Array($0) }, key.key)
        XCTAssertEqual(p.peer, SocketAddress.parse(literal: "127.0.0.1", port: 9))
    }
}
