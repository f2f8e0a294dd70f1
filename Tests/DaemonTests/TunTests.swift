import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// Real tun/tap devices in the test's own network namespace, each uniquely
/// named (sqtt<pid><n>) and deleted by name in tearDown.
final class TunTests: XCTestCase {
    private var devices: [String] = []

    override func setUpWithError() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to create tun devices")
    }

    override func tearDown() {
        for name in devices {
            TestSupport.ip("link", "del", name)
            XCTAssertFalse(TestSupport.interfaceExists(name), "could not delete \(name)")
        }
        devices = []
        super.tearDown()
    }

    private func make(_ mode: String, _ extra: String...) throws -> String {
        let name = TestSupport.uniqueName("sqtt")
        devices.append(name)
        let result = TestSupport.run("/usr/sbin/ip", ["tuntap", "add", "dev", name, "mode", mode] + extra)
        XCTAssertEqual(result.status, .exited(0), result.output)
        try XCTSkipUnless(TestSupport.interfaceExists(name), "ip tuntap add failed: \(result.output)")
        return name
    }

    /// Closed by its owner, the test's local, at the end of the test.
    private func attach(_ name: String, offload: Bool = false) throws -> Tun {
        try Tun.attach(name: name, offload: offload)
    }

    func testAttachAndCarryAPacket() throws {
        let name = try make("tun")
        let tun = try attach(name)
        XCTAssertEqual(tun.name, name)
        XCTAssertNil(tun.owner)
        XCTAssertNil(tun.group)
        XCTAssertTrue(tun.fd.isNonBlocking)
        XCTAssertTrue(tun.fd.isCloseOnExec)
        var buffer = [UInt8](repeating: 0, count: 2048)
        XCTAssertNil(try buffer.withUnsafeMutableBytes { try tun.read(into: $0) }, "nothing to read yet")

        // Route a UDP datagram into the tun and read it as one IPv4 packet (no PI header).
        XCTAssertEqual(TestSupport.ip("link", "set", name, "up").status, .exited(0))
        XCTAssertEqual(TestSupport.ip("addr", "add", "10.213.77.1/24", "dev", name).status, .exited(0))
        let sender = try UDPSocket.open(port: 0, bindAddress: "10.213.77.1")
        let target = try XCTUnwrap(SocketAddress.parse(literal: "10.213.77.2", port: 4242))
        XCTAssertTrue(try Array("through the tun".utf8).withUnsafeBytes { try sender.send($0, to: target) })
        var packet: [UInt8]?
        for _ in 0..<50 where packet == nil {
            var p = pollfd(fd: tun.fd.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 100)
            while let n = try buffer.withUnsafeMutableBytes({ try tun.read(into: $0) }) {
                if buffer[0] >> 4 == 4 { packet = Array(buffer[0..<n]); break }  // skip IPv6 chatter
            }
        }
        let ip = try XCTUnwrap(packet, "no IPv4 packet came out of the tun")
        XCTAssertEqual(ip[9], 17, "UDP")
        XCTAssertEqual(Array(ip[16..<20]), [10, 213, 77, 2])
        XCTAssertEqual(Array(ip[28...]), Array("through the tun".utf8))
        // And a packet written to the tun is accepted.
        XCTAssertTrue(try ip.withUnsafeBytes { try tun.write($0) })
    }

    func testOffloadAttachHandsOverVirtioHeaders() throws {
        let name = try make("tun")
        let tun = try attach(name, offload: true)
        XCTAssertTrue(tun.vnetHeader)
        // The worker learns it from the kernel (TUNGETIFF), not from the helper.
        // (The adopting owner closes the duplicate.)
        XCTAssertTrue(Tun(adopting: try tun.fd.duplicate(), name: name).vnetHeader)

        XCTAssertEqual(TestSupport.ip("link", "set", name, "up").status, .exited(0))
        XCTAssertEqual(TestSupport.ip("addr", "add", "10.213.78.1/24", "dev", name).status, .exited(0))
        let sender = try UDPSocket.open(port: 0, bindAddress: "10.213.78.1")
        let target = try XCTUnwrap(SocketAddress.parse(literal: "10.213.78.2", port: 4242))
        let text = Array("an odd-length payload".utf8)
        XCTAssertTrue(try text.withUnsafeBytes { try sender.send($0, to: target) })
        var buffer = [UInt8](repeating: 0, count: 2048)
        var packet: [UInt8]?
        var header = VirtioNetHeader()
        for _ in 0..<50 where packet == nil {
            var p = pollfd(fd: tun.fd.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 100)
            while let n = try buffer.withUnsafeMutableBytes({ try tun.read(into: $0) }) {
                if n > 10 && buffer[10] >> 4 == 4 {
                    header = buffer.withUnsafeBytes { VirtioNetHeader(loading: $0.baseAddress!) }
                    packet = Array(buffer[10..<n])
                    break
                }
            }
        }
        var ip = try XCTUnwrap(packet, "no IPv4 packet came out of the tun")
        XCTAssertEqual(header.gsoType, VirtioNetHeader.gsoNone)
        XCTAssertEqual(Array(ip[28...]), text)
        // TUN_F_CSUM: the kernel leaves the UDP checksum to us.
        XCTAssertEqual(header.flags & VirtioNetHeader.needsChecksum, VirtioNetHeader.needsChecksum)
        XCTAssertEqual(header.checksumStart, 20)
        XCTAssertEqual(header.checksumOffset, 6)
        XCTAssertFalse(OffloadTests.transportChecksumOK(ip, proto: 17), "still partial")
        XCTAssertTrue(ip.withUnsafeMutableBytes { TSOPlan.completeChecksum($0, header: header) })
        XCTAssertTrue(OffloadTests.transportChecksumOK(ip, proto: 17), "completed")
        // Writing needs the header too: a plain one and the packet are taken.
        var out = [UInt8](repeating: 0, count: 10) + ip
        XCTAssertTrue(try out.withUnsafeMutableBytes { try tun.write(UnsafeRawBufferPointer($0)) })
    }

    func testOffloadNegotiationFallsBackToTheNextChoice() throws {
        let name = try make("tun")
        let tun = try attach(name, offload: true)
        let release = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? ""
        let version = release.split(separator: ".").prefix(2).compactMap { Int($0) }
        let hasUSO = version.count == 2 && version[0] * 1000 + version[1] >= 6002
        XCTAssertEqual(Tun.negotiateOffloads(tun.fd), Tun.offloadChoices[hasUSO ? 0 : 1], "kernel \(release)")
        // A kernel before 6.2 refuses TUN_F_USO4/6 with EINVAL, as every
        // kernel refuses a bit it does not know (bit 30 here; 0x80, newer
        // than USO, is known to this 6.18 kernel): the next choice is taken.
        let tsoOnly = Tun.offloadChoices[1]
        XCTAssertFalse(tsoOnly.contains(.uso4))
        let refused = tsoOnly.union(TunOffloads(rawValue: 0x4000_0000))
        XCTAssertEqual(Tun.negotiateOffloads(tun.fd, choices: [refused, tsoOnly]), tsoOnly)
        XCTAssertNil(Tun.negotiateOffloads(tun.fd, choices: [refused]), "nothing taken: nil, a plain attach follows")
    }

    func testPlainAttachHasNoVirtioHeader() throws {
        let name = try make("tun")
        let tun = try attach(name, offload: false)
        XCTAssertFalse(tun.vnetHeader)
        XCTAssertFalse(Tun(adopting: try tun.fd.duplicate(), name: name).vnetHeader)
    }

    // MARK: Ownership

    /// The tun closes its fd when its owner goes out of scope: the device
    /// is free for the next attach (a second one while attached is EBUSY).
    func testOwnerClosesItsFdWhenItGoesAway() throws {
        let name = try make("tun")
        let number: FileDescriptor
        do {
            let tun = try attach(name)
            number = tun.fd
            XCTAssertFalse(number.isClosed)
        }
        XCTAssertTrue(number.isClosed, "the dropped tun's fd is still open")
        let closed: FileDescriptor
        do {
            let tun = try attach(name)
            closed = tun.fd
            tun.close()
            XCTAssertTrue(closed.isClosed)
        }
        XCTAssertTrue(closed.isClosed)
        XCTAssertNoThrow(try attach(name).close(), "the device was not free again")
    }

    /// Handing the tun over (as the helper does before sending it to the
    /// worker) ends the owner without closing: the fd stays open and
    /// attached for the new owner, which closes it in its turn.
    func testReleaseHandsTheOpenFdOver() throws {
        let name = try make("tun")
        let handed: FileDescriptor
        do {
            let tun = try attach(name)
            handed = tun.release()
        }
        XCTAssertFalse(handed.isClosed, "the released owner closed the fd it handed over")
        do {
            let adopted = Tun(adopting: handed, name: name)
            XCTAssertEqual(adopted.fd, handed)
            XCTAssertThrowsError(try attach(name).close(), "still attached through the handed-over fd") { error in
                XCTAssertEqual(error as? SystemError, .tunAttachFailed(name: name, errno: Errno(EBUSY)))
            }
            var room = [UInt8](repeating: 0, count: 2048)
            XCTAssertNil(try room.withUnsafeMutableBytes { try adopted.read(into: $0) }, "open, nothing to read")
        }
        XCTAssertTrue(handed.isClosed, "the new owner did not close it")
        XCTAssertNoThrow(try attach(name).close(), "the device was not free again")
    }

    func testOwnerAndGroupAreRead() throws {
        let name = try make("tun", "user", "1001", "group", "1002")
        let tun = try attach(name)  // root may attach anyway
        XCTAssertEqual(tun.owner, 1001)
        XCTAssertEqual(tun.group, 1002)
    }

    func testMultiQueueDeviceAttaches() throws {
        let name = try make("tun", "multi_queue")
        XCTAssertNoThrow(try attach(name).close())
    }

    func testSecondAttachIsBusy() throws {
        let name = try make("tun")
        let first = try attach(name)
        XCTAssertThrowsError(try attach(name).close()) { error in
            XCTAssertEqual(error as? SystemError, .tunAttachFailed(name: name, errno: Errno(EBUSY)))
            XCTAssertTrue("\(error)".contains("is another program attached to it?"), "\(error)")
        }
        first.close()
    }

    func testMissingDeviceIsNotCreated() throws {
        let name = TestSupport.uniqueName("sqtm")
        devices.append(name)  // deleted in tearDown should the check ever fail
        XCTAssertFalse(TestSupport.interfaceExists(name))
        XCTAssertThrowsError(try attach(name).close()) { error in
            XCTAssertEqual(error as? SystemError, .tunMissing(name: name))
            XCTAssertEqual("\(error)", "tun device \(name) does not exist; create it with: ip tuntap add dev \(name) mode tun user squtun")
        }
        XCTAssertFalse(TestSupport.interfaceExists(name), "the attempt created the device")
    }

    func testTapIsRefusedWithoutTapMode() throws {
        let name = try make("tap")
        XCTAssertThrowsError(try attach(name).close()) { error in
            XCTAssertEqual(error as? SystemError, .tunIsTap(name: name))
            XCTAssertTrue("\(error)".hasPrefix("\(name) is a TAP device: add --tap, or use a TUN device"), "\(error)")
        }
    }

    /// `--tap`: a TAP device attaches as one, always without a virtio
    /// header (offloads asked for or not), and the worker's adopting init
    /// finds the mode again from the fd (TUNGETIFF).
    func testTapAttachesInTapMode() throws {
        let name = try make("tap")
        let tap = try Tun.attach(name: name, offload: true, tap: true)
        XCTAssertTrue(tap.isTap)
        XCTAssertFalse(tap.vnetHeader, "a TAP device gets no IFF_VNET_HDR")
        let adopted = Tun(adopting: FileDescriptor(rawValue: dup(tap.fd.rawValue)), name: name)
        XCTAssertTrue(adopted.isTap)
        XCTAssertFalse(adopted.vnetHeader)
        adopted.close()
        tap.close()
        let tun = try make("tun")
        let plain = try attach(tun)
        XCTAssertFalse(plain.isTap)
        XCTAssertFalse(Tun(adopting: FileDescriptor(rawValue: dup(plain.fd.rawValue)), name: tun).isTap)
        plain.close()
    }

    func testTunIsRefusedInTapMode() throws {
        let name = try make("tun")
        XCTAssertThrowsError(try Tun.attach(name: name, tap: true).close()) { error in
            XCTAssertEqual(error as? SystemError, .tapIsTun(name: name))
            XCTAssertTrue("\(error)".hasPrefix("\(name) is a TUN device and --tap needs a TAP device: leave --tap out, "
                                              + "or use a TAP device"), "\(error)")
        }
        let missing = TestSupport.uniqueName("sqtm")
        devices.append(missing)
        XCTAssertThrowsError(try Tun.attach(name: missing, tap: true).close()) { error in
            XCTAssertEqual("\(error)", "tap device \(missing) does not exist; create it with: ip tuntap add dev \(missing) mode tap user squtun")
        }
        XCTAssertThrowsError(try Tun.attach(name: "lo", tap: true).close()) { error in
            XCTAssertEqual("\(error)", "interface lo is not a tap device; give one made with: ip tuntap add dev NAME mode tap user squtun")
        }
    }

    func testLoopbackIsRefused() {
        XCTAssertThrowsError(try attach("lo").close()) { error in
            XCTAssertEqual(error as? SystemError, .notATun(name: "lo"))
            XCTAssertEqual("\(error)", "interface lo is not a tun device; give one made with: ip tuntap add dev NAME mode tun user squtun")
        }
    }

    func testBadNames() {
        for name in ["", "a/b", "../x", ".", "..", "sixteen-chars-xx", "tun 0", "tün"] {
            XCTAssertThrowsError(try attach(name).close(), name) { error in
                XCTAssertEqual(error as? SystemError, .badInterfaceName(name))
            }
        }
        XCTAssertTrue(Tun.isValidName("tun0"))
        XCTAssertTrue(Tun.isValidName("fifteen-chars-x"))
    }

    func testAccessRuleForNonRoot() {
        XCTAssertThrowsError(try Tun.checkAccess(name: "tun0", owner: 1001, group: nil, euid: 1002, isMember: { _ in true })) { error in
            XCTAssertEqual("\(error)", "tun device tun0 belongs to uid 1001, not to uid 1002 (you); run squtun as uid 1001, or recreate the device as root with: ip link del tun0 && ip tuntap add dev tun0 mode tun user 1002")
        }
        XCTAssertThrowsError(try Tun.checkAccess(name: "tun0", owner: 1002, group: 50, euid: 1002, isMember: { $0 == 60 })) { error in
            XCTAssertEqual(error as? SystemError, .tunWrongGroup(name: "tun0", group: 50, you: 1002))
        }
        XCTAssertNoThrow(try Tun.checkAccess(name: "tun0", owner: 1002, group: 60, euid: 1002, isMember: { $0 == 60 }))
        XCTAssertNoThrow(try Tun.checkAccess(name: "tun0", owner: nil, group: nil, euid: 1002, isMember: { _ in false }))
    }

    /// checkAccess runs only without CAP_NET_ADMIN: for root that is the
    /// missing capability, not a wrong uid.
    func testAccessRuleForRootWithoutNetAdmin() {
        XCTAssertThrowsError(try Tun.checkAccess(name: "tun0", owner: 104, group: nil, euid: 0, isMember: { _ in true })) { error in
            XCTAssertEqual("\(error)", "tun device tun0 belongs to uid 104 and this root process lacks CAP_NET_ADMIN (a container, or a capability bounding set without it); give squtun CAP_NET_ADMIN")
        }
        XCTAssertThrowsError(try Tun.checkAccess(name: "tun0", owner: nil, group: 50, euid: 0, isMember: { _ in false })) { error in
            XCTAssertEqual(error as? SystemError, .tunNeedsNetAdmin(name: "tun0", owner: nil, group: 50))
        }
        XCTAssertNoThrow(try Tun.checkAccess(name: "tun0", owner: 0, group: nil, euid: 0, isMember: { _ in false }))
    }

    func testParseSysfsNumbers() {
        XCTAssertEqual(Tun.parseNumber("0x1002\n"), 0x1002)
        XCTAssertEqual(Tun.parseNumber("-1\n"), -1)
        XCTAssertEqual(Tun.parseNumber("1001\n"), 1001)
        XCTAssertNil(Tun.parseNumber("zz\n"))
    }
}
