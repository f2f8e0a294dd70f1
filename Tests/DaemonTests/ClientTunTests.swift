import XCTest
@testable import SqutunSystem
#if canImport(Glibc)
import Glibc
#endif

/// Server mode's tun per client, created for real in the host's network
/// namespace from a pattern unique to the test (sqk<pid><n>n%d). The
/// devices are not persistent: closing the fd removes them, which the
/// tests assert; tearDown deletes whatever a failed test left.
final class ClientTunTests: XCTestCase {
    private var created: [String] = []
    private var fds: [FileDescriptor] = []

    override func setUpWithError() throws {
        try XCTSkipIf(geteuid() != 0, "needs root (CAP_NET_ADMIN) to create tun devices")
    }

    override func tearDown() {
        fds.forEach { $0.close() }
        fds = []
        for name in created where TestSupport.interfaceExists(name) {
            TestSupport.ip("link", "del", name)
        }
        created = []
        super.tearDown()
    }

    private func pattern() -> String { TestSupport.uniqueName("sqk") + "n%d" }

    private func create(_ pattern: String, uid: UInt32 = 65534, gid: UInt32 = 65533, mtu: Int = 1420) throws
        -> (fd: FileDescriptor, name: String)
    {
        let made = try ClientTun.create(pattern: pattern, uid: uid, gid: gid, mtu: mtu)
        created.append(made.name)
        fds.append(made.fd)
        return made
    }

    private func closeTracked(_ fd: FileDescriptor) {
        fds.removeAll { $0 == fd }
        fd.close()
    }

    private func sysfs(_ name: String, _ file: String) -> Int64? {
        guard let fd = try? FileDescriptor.open("/sys/class/net/\(name)/\(file)", O_RDONLY) else { return nil }
        defer { fd.close() }
        var bytes = [UInt8](repeating: 0, count: 64)
        guard let n = try? bytes.withUnsafeMutableBytes({ try fd.read(into: $0) }) else { return nil }
        return Tun.parseNumber(String(decoding: bytes[0..<n], as: UTF8.self))
    }

    func testCreatesNumberedDevicesOwnedUpAndWithTheMTU() throws {
        let pattern = pattern()
        let base = String(pattern.dropLast(2))
        let first = try create(pattern, uid: 65534, gid: 65533, mtu: 1420)
        let second = try create(pattern, uid: 4242, gid: 4343, mtu: 1380)
        XCTAssertEqual(first.name, base + "0")
        XCTAssertEqual(second.name, base + "1")
        XCTAssertTrue(first.fd.isNonBlocking)
        XCTAssertTrue(first.fd.isCloseOnExec)

        XCTAssertEqual(sysfs(first.name, "owner"), 65534)
        XCTAssertEqual(sysfs(first.name, "group"), 65533)
        XCTAssertEqual(sysfs(second.name, "owner"), 4242)
        XCTAssertEqual(sysfs(second.name, "group"), 4343)
        XCTAssertEqual(sysfs(first.name, "mtu"), 1420)
        XCTAssertEqual(sysfs(second.name, "mtu"), 1380)
        for name in [first.name, second.name] {
            let flags = try XCTUnwrap(sysfs(name, "flags"), name)
            XCTAssertEqual(flags & 0x1, 0x1, "\(name) is not up")
            let tunFlags = TunFlags(rawValue: UInt16(try XCTUnwrap(sysfs(name, "tun_flags"))))
            XCTAssertTrue(tunFlags.contains([.tun, .noPacketInfo]), "\(tunFlags)")
            XCTAssertFalse(tunFlags.contains(.persist), "\(name) must go with its last fd")
            XCTAssertFalse(tunFlags.contains(.vnetHeader))
        }
        // The worker's view of the fd (TUNGETIFF): a plain tun.
        let adopted = Tun(adopting: try first.fd.duplicate(), name: first.name)
        XCTAssertFalse(adopted.vnetHeader)
        adopted.close()

        // Not persistent: the last close removes the device, and its
        // number is the lowest free one again.
        closeTracked(first.fd)
        XCTAssertFalse(TestSupport.interfaceExists(first.name), "\(first.name) outlived its fd")
        XCTAssertTrue(TestSupport.interfaceExists(second.name))
        let third = try create(pattern)
        XCTAssertEqual(third.name, base + "0")
        closeTracked(second.fd)
        closeTracked(third.fd)
        XCTAssertFalse(TestSupport.interfaceExists(second.name))
        XCTAssertFalse(TestSupport.interfaceExists(third.name))
    }

    /// The device carries packets through the fd the helper made: a
    /// datagram routed into it comes out of the fd as one IPv4 packet.
    func testTheFdCarriesPackets() throws {
        let made = try create(pattern(), mtu: 1400)
        XCTAssertEqual(TestSupport.ip("addr", "add", "10.213.79.1/30", "dev", made.name).status, .exited(0))
        let sender = try UDPSocket.open(port: 0, bindAddress: "10.213.79.1")
        let target = try XCTUnwrap(SocketAddress.parse(literal: "10.213.79.2", port: 4243))
        XCTAssertTrue(try Array("client tun".utf8).withUnsafeBytes { try sender.send($0, to: target) })
        var buffer = [UInt8](repeating: 0, count: 2048)
        var packet: [UInt8]?
        for _ in 0..<50 where packet == nil {
            var p = pollfd(fd: made.fd.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 100)
            while let n = try buffer.withUnsafeMutableBytes({ try made.fd.read(into: $0) }) {
                if buffer[0] >> 4 == 4 { packet = Array(buffer[0..<n]); break }
            }
        }
        let ip = try XCTUnwrap(packet, "no IPv4 packet came out of \(made.name)")
        XCTAssertEqual(Array(ip[16..<20]), [10, 213, 79, 2])
        XCTAssertEqual(Array(ip[28...]), Array("client tun".utf8))
    }

    func testPatterns() {
        for good in ["sqc%d", "%dx", "a.b-c_%d", "c%d.x", "abcdefghijklm%d"] {
            XCTAssertTrue(ClientTun.isValidPattern(good), good)
        }
        // No %d would attach to an existing device of that name; two, or
        // another conversion, the kernel refuses; 16 bytes is too long.
        for bad in ["sqc", "sqc%d%d", "sqc%s", "sq%c%d", "%d", "sq c%d", "sq/%d", "abcdefghijklmn%d", "", "sqc%", "sqc%D",
                    "sq%%d"] {
            XCTAssertFalse(ClientTun.isValidPattern(bad), bad)
        }
    }

    func testABadPatternCreatesNothing() throws {
        let before = TestSupport.run("/usr/sbin/ip", ["-o", "link"]).output.split(separator: "\n").count
        for bad in ["lo", "sqc%s", "sqc%d%d"] {
            XCTAssertThrowsError(try ClientTun.create(pattern: bad, uid: 0, gid: 0, mtu: 1400)) { error in
                XCTAssertEqual(error as? SystemError, .badTunPattern(bad))
                XCTAssertFalse("\(error)".contains("\n"))
                XCTAssertTrue("\(error)".contains("exactly one %d"), "\(error)")
            }
        }
        XCTAssertEqual(TestSupport.run("/usr/sbin/ip", ["-o", "link"]).output.split(separator: "\n").count, before)
    }

    /// A step failing after the kernel made the device (here the MTU, above
    /// what a tun takes) names the device and the step, and leaves no device.
    func testAFailedStepLeavesNoDevice() throws {
        let pattern = pattern()
        let expected = String(pattern.dropLast(2)) + "0"
        created.append(expected)
        XCTAssertThrowsError(try ClientTun.create(pattern: pattern, uid: 65534, gid: 65534, mtu: 70000)) { error in
            XCTAssertEqual(error as? SystemError,
                           .clientTunFailed(pattern: pattern, name: expected, operation: "SIOCSIFMTU", errno: Errno(EINVAL)))
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"))
            XCTAssertTrue(text.contains("cannot create client tun device \(expected) (from \(pattern)) (SIOCSIFMTU: "), text)
        }
        XCTAssertFalse(TestSupport.interfaceExists(expected))
    }
}
