import XCTest
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

final class SocketAddressTests: XCTestCase {
    func testParseIPv4() throws {
        let a = try XCTUnwrap(SocketAddress.parse(literal: "198.51.100.2", port: 3456))
        XCTAssertEqual(a.family, .ipv4)
        XCTAssertEqual(a.port, 3456)
        XCTAssertEqual(a.description, "198.51.100.2:3456")
        XCTAssertEqual(Int(a.length), MemoryLayout<sockaddr_in>.size)
    }

    func testParseIPv6WithAndWithoutBrackets() throws {
        let a = try XCTUnwrap(SocketAddress.parse(literal: "2001:db8::1", port: 3456))
        let b = try XCTUnwrap(SocketAddress.parse(literal: "[2001:db8::1]", port: 3456))
        XCTAssertEqual(a.family, .ipv6)
        XCTAssertEqual(a.description, "[2001:db8::1]:3456")
        XCTAssertEqual(a, b)
        XCTAssertEqual(Int(a.length), MemoryLayout<sockaddr_in6>.size)
    }

    func testScopeIDs() throws {
        let numeric = try XCTUnwrap(SocketAddress.parse(literal: "fe80::1%2", port: 1))
        XCTAssertEqual(numeric.scopeID, 2)
        XCTAssertEqual(numeric.description, "[fe80::1%2]:1")
        let named = try XCTUnwrap(SocketAddress.parse(literal: "fe80::1%lo", port: 1))
        XCTAssertEqual(named.scopeID, if_nametoindex("lo"))
        XCTAssertNotEqual(numeric, SocketAddress.parse(literal: "fe80::1%3", port: 1))
        XCTAssertNil(SocketAddress.parse(literal: "fe80::1%", port: 1))
        XCTAssertNil(SocketAddress.parse(literal: "fe80::1%sqt-no-such-if", port: 1))
        XCTAssertNil(SocketAddress.parse(literal: "192.0.2.1%2", port: 1), "IPv4 has no scope")
    }

    func testRejectsNonLiterals() {
        for text in ["", "hello", "999.1.1.1", "1.2.3", "2001:db8:::1", "[2001:db8::1", "example.com", " 1.2.3.4"] {
            XCTAssertNil(SocketAddress.parse(literal: text, port: 1), text)
        }
    }

    func testMappedIPv4IsShownAndComparedAsIPv4() throws {
        let v4 = try XCTUnwrap(SocketAddress.parse(literal: "198.51.100.2", port: 3456))
        // Build the mapped form by hand, as recvfrom on a dual-stack socket would.
        var v6 = in6_addr()
        XCTAssertEqual(inet_pton(AF_INET6, "::ffff:198.51.100.2", &v6), 1)
        let mapped = SocketAddress(ipv6: v6, port: 3456)
        XCTAssertEqual(mapped.family, .ipv6)
        XCTAssertTrue(mapped.isMappedIPv4)
        XCTAssertFalse(v4.isMappedIPv4)
        XCTAssertEqual(mapped, v4)
        XCTAssertEqual(mapped.hashValue, v4.hashValue)
        XCTAssertEqual(Set([mapped, v4]).count, 1)
        XCTAssertEqual(mapped.description, "198.51.100.2:3456")
        XCTAssertEqual(mapped.unmapped.family, .ipv4)
        // parse of the mapped literal gives the plain form.
        XCTAssertEqual(SocketAddress.parse(literal: "::ffff:198.51.100.2", port: 3456)?.family, .ipv4)
        // And back: what a dual-stack socket sends to.
        let back = v4.mappedToIPv6
        XCTAssertEqual(back.family, .ipv6)
        XCTAssertTrue(back.isMappedIPv4)
        XCTAssertEqual(back, v4)
        XCTAssertEqual(back.port, 3456)
    }

    func testInequality() throws {
        let a = try XCTUnwrap(SocketAddress.parse(literal: "198.51.100.2", port: 3456))
        XCTAssertNotEqual(a, SocketAddress.parse(literal: "198.51.100.2", port: 3457))
        XCTAssertNotEqual(a, SocketAddress.parse(literal: "198.51.100.3", port: 3456))
        XCTAssertNotEqual(a, SocketAddress.parse(literal: "2001:db8::1", port: 3456))
        XCTAssertNotEqual(a, SocketAddress.parse(literal: "::198.51.100.2", port: 3456), "IPv4-compatible is not mapped")
        XCTAssertNotEqual(SocketAddress.parse(literal: "2001:db8::1", port: 1), SocketAddress.parse(literal: "2001:db8::2", port: 1))
        XCTAssertNotEqual(a, SocketAddress())
        XCTAssertEqual(SocketAddress().description, "(no address)")
    }

    func testCopyingValidatesFamilyAndLength() {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        XCTAssertNotNil(SocketAddress(copying: &sin, length: socklen_t(MemoryLayout<sockaddr_in>.size)))
        XCTAssertNil(SocketAddress(copying: &sin, length: 4), "too short")
        var un = sockaddr_un()
        un.sun_family = sa_family_t(AF_UNIX)
        XCTAssertNil(SocketAddress(copying: &un, length: socklen_t(MemoryLayout<sockaddr_un>.size)))
    }

    func testResolveNumericAndHosts() throws {
        XCTAssertEqual(try SocketAddress.resolve(host: "127.0.0.1", port: 9).description, "127.0.0.1:9")
        XCTAssertEqual(try SocketAddress.resolve(host: "[::1]", port: 9).description, "[::1]:9")
        let local = try SocketAddress.resolve(host: "localhost", port: 9, family: .ipv4)
        XCTAssertEqual(local.description, "127.0.0.1:9")
    }

    func testResolveErrors() {
        XCTAssertThrowsError(try SocketAddress.resolve(host: "sqt-no-such-host.invalid", port: 1)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("cannot resolve peer 'sqt-no-such-host.invalid': "), text)
            XCTAssertGreaterThan(text.count, "cannot resolve peer 'sqt-no-such-host.invalid': ".count)
        }
        XCTAssertThrowsError(try SocketAddress.resolve(host: "::1", port: 1, family: .ipv4, bindAddress: "127.0.0.1")) { error in
            XCTAssertEqual("\(error)", "peer '::1' has no IPv4 address, and -b 127.0.0.1 makes the UDP socket IPv4-only; give -p the peer's IPv4 address, or -b an IPv6 address (or no -b)")
        }
        XCTAssertThrowsError(try SocketAddress.resolve(host: "[::ffff:127.0.0.1]", port: 1, family: .ipv6, bindAddress: "::1")) { error in
            XCTAssertEqual(error as? SystemError, .peerFamilyMismatch(host: "[::ffff:127.0.0.1]", family: .ipv6, bindAddress: "::1"),
                           "a mapped address is IPv4: an IPv6-only socket cannot reach it")
        }
        XCTAssertThrowsError(try SocketAddress.resolve(host: "::1", port: 1, family: .ipv4)) { error in
            XCTAssertEqual("\(error)", "peer '::1' has no IPv4 address, and this kernel has no IPv6, so the UDP socket is IPv4-only; give -p the peer's IPv4 address")
        }
        // A name: its answer has the socket's family, or the start is refused
        // with the same line (here /etc/hosts may or may not give localhost ::1).
        do {
            let v6 = try SocketAddress.resolve(host: "localhost", port: 1, family: .ipv6, bindAddress: "::1")
            XCTAssertEqual(v6.family, .ipv6)
        } catch {
            XCTAssertEqual(error, .peerFamilyMismatch(host: "localhost", family: .ipv6, bindAddress: "::1"))
        }
    }
}
