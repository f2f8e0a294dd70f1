import Foundation
import ArgumentParser
import XCTest
@testable import SqutunConfig
import Shared

final class OptionsTests: XCTestCase {
    /// Parses like the CLI does: ArgumentParser + validate(), then resolve().
    private func invocation(_ args: [String]) throws -> TunnelOptions.Invocation {
        try TunnelOptions.parse(args).resolve()
    }

    private func tunnel(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> TunnelConfig {
        guard case .tunnel(let config) = try invocation(args) else {
            XCTFail("\(args) is not a tunnel invocation", file: file, line: line)
            throw ConfigError.missingOption(option: "-i", when: "")
        }
        return config
    }

    /// The one-line message and whether it is a usage error, or nil if `args` are accepted.
    private func failure(_ args: [String]) -> (message: String, usage: Bool)? {
        do {
            _ = try invocation(args)
            return nil
        } catch let error as ConfigError {
            return (error.description, error.isUsageError)
        } catch {
            return (TunnelOptions.message(for: error), TunnelOptions.exitCode(for: error) == .validationFailure)
        }
    }

    func testSquTUNCommandLine() throws {
        let c = try tunnel(["-l", "3456", "-p", "198.51.100.2", "-r", "3457", "-i", "tun0", "-k", "/etc/k",
                            "-a", "59", "-c", "30"])
        XCTAssertEqual(c, TunnelConfig(
            localPort: 3456, peer: "198.51.100.2", remotePort: 3457, interface: "tun0", keyPath: "/etc/k",
            keepaliveSeconds: 59, skewSeconds: 30, bindAddress: nil, foreground: false, user: "squtun",
            chrootDirectory: "/var/lib/squtun/empty", pidfile: "/run/squtun/squtun-tun0.pid",
            controlSocket: "/run/squtun/squtun-tun0.sock"))
    }

    func testDefaults() throws {
        let c = try tunnel(["-i", "sq1", "-k", "key"])
        XCTAssertEqual(c.localPort, 3456)
        XCTAssertNil(c.peer)
        XCTAssertEqual(c.remotePort, 3456)
        XCTAssertEqual(c.keepaliveSeconds, 0)
        XCTAssertEqual(c.skewSeconds, Wire.defaultSkewSeconds)
        XCTAssertEqual(c.skewSeconds, 30)
        XCTAssertNil(c.bindAddress)
        XCTAssertFalse(c.foreground)
        XCTAssertEqual(c.user, "squtun")
        XCTAssertEqual(c.chrootDirectory, "/var/lib/squtun/empty")
        XCTAssertEqual(c.pidfile, "/run/squtun/squtun-sq1.pid")
        XCTAssertEqual(c.controlSocket, "/run/squtun/squtun-sq1.sock")
        XCTAssertEqual(c.keyPath, "key")
        XCTAssertTrue(c.offload, "offloads on unless --no-offload")
    }

    /// Without --control, the status socket goes with the pid file: two
    /// tunnels with their own pid files (one interface name in two network
    /// namespaces) get their own sockets.
    func testControlSocketFollowsPidfile() throws {
        XCTAssertEqual(try tunnel(["-i", "tun0", "-k", "k", "--pidfile", "/run/squtun/a.pid"]).controlSocket,
                       "/run/squtun/a.sock")
        XCTAssertEqual(try tunnel(["-i", "tun0", "-k", "k", "--pidfile", "/run/squtun/b.pid"]).controlSocket,
                       "/run/squtun/b.sock")
        XCTAssertEqual(try tunnel(["-i", "tun0", "-k", "k", "--pidfile", "/run/a-tun0"]).controlSocket,
                       "/run/a-tun0.sock", "no .pid: .sock appended")
        XCTAssertEqual(try tunnel(["-i", "tun0", "-k", "k", "--pidfile", "/run/a.pid", "--control", "/run/c.sock"])
                           .controlSocket, "/run/c.sock", "--control wins")
        XCTAssertEqual(TunnelOptions.defaultControlSocket(interface: "tun0"), "/run/squtun/squtun-tun0.sock")
    }

    func testLongNames() throws {
        let c = try tunnel(["--local-port", "1", "--peer", "vpn.example.org", "--remote-port", "65535",
                            "--interface", "a.b-c_d", "--key", "/k", "--keepalive", "3600", "--skew", "0",
                            "--bind", "::1", "--foreground", "--user", "nobody", "--chroot", "/srv/empty",
                            "--pidfile", "/run/x.pid", "--control", "/run/x.sock", "--no-offload"])
        XCTAssertEqual(c, TunnelConfig(
            localPort: 1, peer: "vpn.example.org", remotePort: 65535, interface: "a.b-c_d", keyPath: "/k",
            keepaliveSeconds: 3600, skewSeconds: 0, bindAddress: "::1", foreground: true, user: "nobody",
            chrootDirectory: "/srv/empty", pidfile: "/run/x.pid", controlSocket: "/run/x.sock", offload: false))
    }

    /// The keypair options reach the peer's settings, from the command line
    /// or the config file (the command line winning); empty values are refused.
    func testKeypairOptions() throws {
        let c = try tunnel(["-i", "tun0", "-k", "/etc/squtun/a.key", "--peer-key", "/etc/squtun/b.pub",
                            "--psk", "/etc/squtun/ab.psk"])
        XCTAssertEqual(c.peers[0], PeerSettings(host: nil, port: 3456, keyPath: "/etc/squtun/a.key",
                                                peerKey: "/etc/squtun/b.pub", pskPath: "/etc/squtun/ab.psk"))
        XCTAssertNil(try tunnel(["-i", "tun0", "-k", "k"]).peers[0].peerKey)
        XCTAssertEqual(failure(["-i", "t", "-k", "k", "--peer-key", ""])?.message,
                       "--peer-key: empty (a public key or its file) ''")
        XCTAssertEqual(failure(["-i", "t", "-k", "k", "--psk", ""])?.usage, true)
        let dir = NSTemporaryDirectory() + "squtun-options-\(getpid())"
        mkdir(dir, 0o700)
        defer { unlink(dir + "/c.conf"); rmdir(dir) }
        let conf = dir + "/c.conf"
        XCTAssertTrue(FileManager.default.createFile(atPath: conf, contents: Data(
            "key /k\npeer-key squtun-public-00\npsk /p\n".utf8)))
        let f = try tunnel(["--config", conf, "-i", "t", "--psk", "/q"])
        XCTAssertEqual(f.peers[0].peerKey, "squtun-public-00")
        XCTAssertEqual(f.peers[0].pskPath, "/q", "the command line overrides the file")
    }

    func testAcceptedEdgeValues() throws {
        XCTAssertEqual(try tunnel(["-i", "abcdefghijklmno", "-k", "k"]).interface, "abcdefghijklmno")
        XCTAssertEqual(try tunnel(["-i", "t", "-k", "k", "-c", "86400"]).skewSeconds, 86400)
        XCTAssertEqual(try tunnel(["-i", "t", "-k", "k", "-a", "0"]).keepaliveSeconds, 0)
        XCTAssertEqual(try tunnel(["-i", "t", "-k", "k", "-l", "007"]).localPort, 7)
        for peer in ["localhost", "vpn.example.org.", "a-b.c0", "under_score.example", "2001:db8::1", "::ffff:192.0.2.1", "192.0.2.1"] {
            XCTAssertEqual(try tunnel(["-i", "t", "-k", "k", "-p", peer]).peer, peer)
        }
        for address in ["0.0.0.0", "::", "fe80::1"] {
            XCTAssertEqual(try tunnel(["-i", "t", "-k", "k", "-b", address]).bindAddress, address)
        }
        XCTAssertEqual(try tunnel(["-i", "t", "-k", "k", "-u", "1000"]).user, "1000")
    }

    func testMTUInvocation() throws {
        let cbc = SuiteID.aes256CBCHMACSHA256
        XCTAssertEqual(try invocation(["-m", "1500"]), .mtu(linkMTU: 1500, underlay: .ipv4, suite: cbc))
        XCTAssertEqual(try invocation(["--mtu", "1500", "--ipv6"]), .mtu(linkMTU: 1500, underlay: .ipv6, suite: cbc))
        XCTAssertEqual(try invocation(["-m", "188"]), .mtu(linkMTU: 188, underlay: .ipv4, suite: cbc))
        XCTAssertEqual(try invocation(["-m", "65535", "--ipv6"]), .mtu(linkMTU: 65535, underlay: .ipv6, suite: cbc))
        XCTAssertEqual(try invocation(["-m", "1500", "--cipher", "aes-256-gcm"]),
                       .mtu(linkMTU: 1500, underlay: .ipv4, suite: .aes256GCM))
        XCTAssertEqual(try invocation(["-m", "144", "--cipher", "chacha20-poly1305"]),
                       .mtu(linkMTU: 144, underlay: .ipv4, suite: .chacha20Poly1305))
        XCTAssertEqual(try invocation(["-m", "1376", "--ipv6", "--cipher", "aes-256-gcm"]),
                       .mtu(linkMTU: 1376, underlay: .ipv6, suite: .aes256GCM))
        XCTAssertNotNil(failure(["-m", "1375", "--ipv6", "--cipher", "aes-256-gcm"]))
        XCTAssertNotNil(failure(["-m", "187"]))
        // -m needs neither -i nor -k.
        XCTAssertNil(failure(["-m", "9000"]))
    }

    /// Each bad case: arguments, the option the message must name, the value it must quote.
    func testBadValuesNameOptionAndValue() {
        let cases: [(args: [String], option: String, value: String)] = [
            /*  1 */ (["-l", "0"], "-l/--local-port", "'0'"),
            /*  2 */ (["-l", "65536"], "-l/--local-port", "'65536'"),
            /*  3 */ (["-l", "abc"], "-l/--local-port", "'abc'"),
            /*  4 */ (["-l", ""], "-l/--local-port", "''"),
            /*  5 */ (["-l", "+5"], "-l/--local-port", "'+5'"),
            /*  6 */ (["-l", " 5"], "-l/--local-port", "' 5'"),
            /*  7 */ (["-l", "-1"], "-l/--local-port", "'-1'"),
            /*  8 */ (["-l", "99999999999999999999999"], "-l/--local-port", "'99999999999999999999999'"),
            /*  9 */ (["-p", "h", "-r", "0"], "-r/--remote-port", "'0'"),
            /* 10 */ (["-p", "h", "-r", "65536"], "-r/--remote-port", "'65536'"),
            /* 11 */ (["-p", "h", "-r", "abc"], "-r/--remote-port", "'abc'"),
            /* 12 */ (["-r", "3457", "-i", "t", "-k", "k"], "-r/--remote-port", "'3457'"),
            /* 13 */ (["-i", "", "-k", "k"], "-i/--interface", "''"),
            /* 14 */ (["-i", ".", "-k", "k"], "-i/--interface", "'.'"),
            /* 15 */ (["-i", "..", "-k", "k"], "-i/--interface", "'..'"),
            /* 16 */ (["-i", "abcdefghijklmnop", "-k", "k"], "-i/--interface", "'abcdefghijklmnop'"),
            /* 17 */ (["-i", "tun/0", "-k", "k"], "-i/--interface", "'tun/0'"),
            /* 18 */ (["-i", "tun 0", "-k", "k"], "-i/--interface", "'tun 0'"),
            /* 19 */ (["-i", "tun:0", "-k", "k"], "-i/--interface", "'tun:0'"),
            /* 20 */ (["-i", "tün0", "-k", "k"], "-i/--interface", "'t\\xc3\\xbcn0'"),
            /* 21 */ (["-i", "a\nb", "-k", "k"], "-i/--interface", "'a\\nb'"),
            /* 22 */ (["-a", "3601"], "-a/--keepalive", "'3601'"),
            /* 23 */ (["-a", "-1"], "-a/--keepalive", "'-1'"),
            /* 24 */ (["-a", "1.5"], "-a/--keepalive", "'1.5'"),
            /* 25 */ (["-c", "86401"], "-c/--skew", "'86401'"),
            /* 26 */ (["-c", "-30"], "-c/--skew", "'-30'"),
            /* 27 */ (["--chroot", "var/empty"], "--chroot", "'var/empty'"),
            /* 28 */ (["--pidfile", "run/x.pid"], "--pidfile", "'run/x.pid'"),
            /* 28b */ (["--control", "x.sock"], "--control", "'x.sock'"),
            /* 29 */ (["-b", "example.org"], "-b/--bind", "'example.org'"),
            /* 30 */ (["-b", "1.2.3"], "-b/--bind", "'1.2.3'"),
            /* 31 */ (["-b", "[::1]"], "-b/--bind", "'[::1]'"),
            /* 32 */ (["-m", "0"], "-m/--mtu", "'0'"),
            /* 33 */ (["-m", "183"], "-m/--mtu", "'183'"),
            /* 34 */ (["-m", "1419", "--ipv6"], "-m/--mtu", "'1419'"),
            /* 35 */ (["-m", "65536"], "-m/--mtu", "'65536'"),
            /* 36 */ (["-m", "-1500"], "-m/--mtu", "'-1500'"),
            /* 37 */ (["-m", "abc"], "-m/--mtu", "'abc'"),
            /* 38 */ (["-p", "10.0.0.256"], "-p/--peer", "'10.0.0.256'"),
            /* 39 */ (["-p", "a..b"], "-p/--peer", "'a..b'"),
            /* 40 */ (["--peer=-x.example"], "-p/--peer", "'-x.example'"),
            /* 41 */ (["-p", "bad!.example"], "-p/--peer", "'bad!.example'"),
            /* 42 */ (["-p", ""], "-p/--peer", "''"),
            /* 43 */ (["--user=-root"], "-u/--user", "'-root'"),
            /* 44 */ (["-u", ""], "-u/--user", "''"),
            /* 45 */ (["-k", ""], "-k/--key", "''"),
        ]
        for (n, c) in cases.enumerated() {
            guard let f = failure(c.args) else {
                XCTFail("case \(n + 1) \(c.args): accepted")
                continue
            }
            XCTAssertTrue(f.message.contains(c.option), "case \(n + 1): \(f.message)")
            XCTAssertTrue(f.message.contains(c.value), "case \(n + 1): \(f.message)")
            XCTAssertTrue(f.usage, "case \(n + 1): not a usage error: \(f.message)")
            XCTAssertFalse(f.message.contains("\n"), "case \(n + 1): \(f.message)")
        }
    }

    func testMessagesSayWhatIsWrong() {
        XCTAssertEqual(failure(["-l", "0"])?.message, "-l/--local-port: out of range 1-65535 '0'")
        XCTAssertEqual(failure(["-a", "-1"])?.message, "-a/--keepalive: must not be negative '-1'")
        XCTAssertEqual(failure(["-r", "3457"])?.message, "-r/--remote-port: needs -p/--peer '3457'")
        XCTAssertEqual(failure(["-m", "20"])?.message,
                       "-m/--mtu: too small: a tun MTU of 68 (IPv4's minimum) needs a link MTU of at least 188 '20'")
        XCTAssertEqual(failure(["-m", "20", "--cipher", "aes-256-gcm"])?.message,
                       "-m/--mtu: too small: a tun MTU of 68 (IPv4's minimum) needs a link MTU of at least 144 '20'")
        XCTAssertEqual(failure(["-i", "t", "-k", "k", "--cipher", "aes-128-gcm"])?.message,
                       "--cipher: unknown cipher suite (use aes-256-cbc-hmac-sha256, aes-256-gcm or chacha20-poly1305) "
                       + "'aes-128-gcm'")
        XCTAssertTrue(failure(["-i", "t", "-k", "k", "--cipher", "AES-256-GCM"])?.usage ?? false)
    }

    func testCipherOption() throws {
        XCTAssertEqual(try tunnel(["-i", "t", "-k", "k"]).cipher, .aes256CBCHMACSHA256)
        for suite in SuiteID.allCases {
            XCTAssertEqual(try tunnel(["-i", "t", "-k", "k", "--cipher", suite.name]).cipher, suite)
        }
    }

    func testTapOption() throws {
        XCTAssertFalse(try tunnel(["-i", "t", "-k", "k"]).tap)
        XCTAssertTrue(try tunnel(["-i", "t", "-k", "k", "--tap"]).tap)
        XCTAssertTrue(try tunnel(["-i", "t", "-k", "k", "--tap", "--no-offload"]).tap)
        XCTAssertEqual(try invocation(["-m", "1500", "--tap"]),
                       .mtu(linkMTU: 1500, underlay: .ipv4, suite: .aes256CBCHMACSHA256, tap: true))
        XCTAssertEqual(try invocation(["-m", "1500"]),
                       .mtu(linkMTU: 1500, underlay: .ipv4, suite: .aes256CBCHMACSHA256, tap: false))
    }

    func testRequiredOptionsWithoutMTU() {
        for (args, option) in [([String](), "-i/--interface"), (["-k", "/k"], "-i/--interface"),
                               (["-i", "tun0"], "-k/--key")] {
            guard let f = failure(args) else {
                XCTFail("\(args): accepted")
                continue
            }
            XCTAssertEqual(f.message, "\(option): required unless -m is given")
            XCTAssertTrue(f.usage)
        }
        // The check is in resolve(), not validate(): `squtun genkey` parses the
        // root options first and must not need -i/-k.
        XCTAssertNoThrow(try TunnelOptions.parse([]))
    }

    func testIPv6FlagNeedsMTU() {
        let f = failure(["-i", "t", "-k", "k", "--ipv6"])
        XCTAssertEqual(f?.message, "--ipv6: only valid together with -m/--mtu")
        XCTAssertEqual(f?.usage, true)
    }

    func testArgumentParserErrorsAreUsageErrors() {
        for args in [["--bogus"], ["-l"], ["-f", "extra"]] {
            guard let f = failure(args) else {
                XCTFail("\(args): accepted")
                continue
            }
            XCTAssertTrue(f.usage, "\(args): \(f.message)")
        }
    }
}
