import Foundation
import XCTest
import Shared
import SqutunConfig

final class CLITests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "squtun-cli-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func assertOneLineError(_ r: Run, status: Int32, mentions: [String] = [],
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stdout, "", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("squtun: "), r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.hasSuffix("\n"), r.stderr, file: file, line: line)
        for m in mentions {
            XCTAssertTrue(r.stderr.contains(m), "'\(m)' not in \(r.stderr)", file: file, line: line)
        }
    }

    private func mode(_ path: String) -> mode_t {
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        return st.st_mode & 0o7777
    }

    // MARK: --version

    /// The release, and the libcrypto squtun runs with (the one `openssl
    /// version` reports as "Library:", the system's libcrypto).
    func testVersion() throws {
        let r = try Squtun.run(["--version"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 3, r.stdout)  // two lines and the final newline
        XCTAssertEqual(lines.first.map(String.init), "squtun \(Version.squtun)")
        let openssl = lines.count > 1 ? String(lines[1]) : ""
        XCTAssertNotNil(openssl.range(of: #"^OpenSSL [0-9]+\.[0-9]+\.[0-9]+"#, options: .regularExpression), openssl)
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = ["version"]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertTrue(text.contains("Library: \(openssl))") || text == openssl + "\n", "openssl version: \(text)")
        }
    }

    /// The package's version (debian/changelog's first line) is the binary's.
    func testVersionMatchesDebianChangelog() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let changelog = try String(contentsOf: root.appendingPathComponent("debian/changelog"), encoding: .utf8)
        let first = changelog.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(first.hasPrefix("squtun (\(Version.squtun)) "), "debian/changelog starts: \(first)")
    }

    // MARK: -m

    func testMTU1500() throws {
        let r = try Squtun.run(["-m", "1500"])
        XCTAssertEqual(r.stdout, "1391\n")
        XCTAssertEqual(r.stderr, "")
        XCTAssertEqual(r.status, 0)
    }

    func testMTU1500IPv6() throws {
        let r = try Squtun.run(["-m", "1500", "--ipv6"])
        XCTAssertEqual(r.stdout, "1359\n")
        XCTAssertEqual(r.stderr, "")
        XCTAssertEqual(r.status, 0)
    }

    /// `--cipher` with -m: that suite's MTU, every suite both ways.
    func testMTU1500EverySuite() throws {
        let expected: [(String, [String], String)] = [
            ("aes-256-cbc-hmac-sha256", [], "1391\n"), ("aes-256-cbc-hmac-sha256", ["--ipv6"], "1359\n"),
            ("aes-256-gcm", [], "1424\n"), ("aes-256-gcm", ["--ipv6"], "1404\n"),
            ("chacha20-poly1305", [], "1424\n"), ("chacha20-poly1305", ["--ipv6"], "1404\n"),
        ]
        for (name, extra, mtu) in expected {
            let r = try Squtun.run(["-m", "1500", "--cipher", name] + extra)
            XCTAssertEqual(r.stdout, mtu, "\(name) \(extra)")
            XCTAssertEqual(r.stderr, "")
            XCTAssertEqual(r.status, 0)
        }
    }

    /// `--tap` with -m: the TAP device's MTU, its frames' 14-byte Ethernet
    /// header counted against the payload; every suite both ways.
    func testMTU1500TapEverySuite() throws {
        let expected: [(String, [String], String)] = [
            ("aes-256-cbc-hmac-sha256", [], "1377\n"), ("aes-256-cbc-hmac-sha256", ["--ipv6"], "1345\n"),
            ("aes-256-gcm", [], "1410\n"), ("aes-256-gcm", ["--ipv6"], "1390\n"),
            ("chacha20-poly1305", [], "1410\n"), ("chacha20-poly1305", ["--ipv6"], "1390\n"),
        ]
        for (name, extra, mtu) in expected {
            let r = try Squtun.run(["-m", "1500", "--tap", "--cipher", name] + extra)
            XCTAssertEqual(r.stdout, mtu, "\(name) \(extra)")
            XCTAssertEqual(r.stderr, "")
            XCTAssertEqual(r.status, 0)
        }
        // The smallest link: a TAP device must still carry 68 (IPv4) / 1280
        // (IPv6) bytes of IP behind its Ethernet header.
        assertOneLineError(try Squtun.run(["-m", "203", "--tap"]), status: 64,
                           mentions: ["-m/--mtu", "TAP MTU of 68", "204", "'203'"])
        // (Suite 1 pads to 16 bytes: the smallest link gives a little more.)
        XCTAssertEqual(try Squtun.run(["-m", "204", "--tap"]).stdout, "81\n")
        XCTAssertEqual(try Squtun.run(["-m", "158", "--tap", "--cipher", "aes-256-gcm"]).stdout, "68\n")
    }

    func testTapIsForPointToPoint() throws {
        assertOneLineError(try Squtun.run(["--tap", "--server", "--peers", "/etc/squtun/peers", "-k", "/k"]),
                           status: 64, mentions: ["--tap", "--server", "point-to-point"])
        assertOneLineError(try Squtun.run(["--tap", "--id", "c1", "-i", "tap0", "-k", "/k"]),
                           status: 64, mentions: ["--tap", "--id", "point-to-point"])
    }

    func testUnknownCipherIsOneLine() throws {
        assertOneLineError(try Squtun.run(["-m", "1500", "--cipher", "rot13"]), status: 64,
                           mentions: ["--cipher", "'rot13'", "aes-256-cbc-hmac-sha256", "aes-256-gcm", "chacha20-poly1305"])
    }

    func testMTUTooSmall() throws {
        assertOneLineError(try Squtun.run(["-m", "20"]), status: 64, mentions: ["-m/--mtu", "'20'", "188"])
        assertOneLineError(try Squtun.run(["-m", "1423", "--ipv6"]), status: 64, mentions: ["'1423'", "1424"])
        assertOneLineError(try Squtun.run(["-m", "1375", "--ipv6", "--cipher", "aes-256-gcm"]), status: 64,
                           mentions: ["'1375'", "1376"])
    }

    // MARK: help

    func testHelpListsEveryOptionAndDefault() throws {
        for flag in ["-h", "--help"] {
            let r = try Squtun.run([flag])
            XCTAssertEqual(r.status, 0)
            XCTAssertEqual(r.stderr, "")
            for text in ["-l, --local-port", "-p, --peer", "-r, --remote-port", "-i, --interface", "-k, --key",
                         "-a, --keepalive", "-c, --skew", "-m, --mtu", "--ipv6", "--cipher", "--tap", "-b, --bind", "-f, --foreground",
                         "-u, --user", "--chroot", "--pidfile", "genkey",
                         "(default: 3456)", "(default: 30)", "(default: squtun)", "(default: 0)",
                         "/var/lib/squtun/empty", "/run/squtun/squtun-IFACE.pid"] {
                XCTAssertTrue(r.stdout.contains(text), "\(flag) help lacks '\(text)'")
            }
        }
    }

    func testGenkeyHelp() throws {
        let r = try Squtun.run(["genkey", "-h"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("squtun genkey [<file>]"), r.stdout)
    }

    func testStatusHelpNamesControl() throws {
        let r = try Squtun.run(["status", "--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("USAGE: squtun status <iface> [--json] [--pidfile <path> | --control <path>]"), r.stdout)
        XCTAssertTrue(r.stdout.contains("--json "), r.stdout)
        XCTAssertTrue(r.stdout.contains("--control <path>: that socket"), r.stdout)
        XCTAssertTrue(r.stdout.contains("--pidfile <path>: the socket that goes with that pid file"), r.stdout)
    }

    /// What squtun prints never carries terminal escapes or bidi overrides,
    /// even when they come from its own arguments (a path someone else chose).
    func testErrorLinesAreSanitized() throws {
        let path = dir + "/\u{1b}]0;owned\u{07}\u{202e}yek"
        let r = try Squtun.run(["-i", "tun0", "-k", path])
        assertOneLineError(r, status: 1, mentions: ["\\x1b]0;owned\\x07\\u{202e}yek"])
        XCTAssertFalse(r.stderr.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 || $0.value == 0x202e }, r.stderr)
    }

    // MARK: usage errors

    func testBadOptionsGiveOneLineAndExit64() throws {
        let cases: [([String], [String])] = [
            (["-l", "0"], ["-l/--local-port", "'0'"]),
            (["-l", "abc", "-i", "tun0", "-k", "k"], ["-l/--local-port", "'abc'"]),
            (["-i", "a/b", "-k", "k"], ["-i/--interface", "'a/b'"]),
            (["-i", "a\nb\nc", "-k", "k"], ["-i/--interface", "'a\\nb\\nc'"]),
            (["-a", "-5"], ["-a/--keepalive", "'-5'"]),
            (["-r", "3457", "-i", "tun0", "-k", "k"], ["-r/--remote-port", "'3457'"]),
            (["--chroot", "rel"], ["--chroot", "'rel'"]),
            ([], ["-i/--interface"]),
            (["-i", "tun0"], ["-k/--key"]),
            // ArgumentParser's own errors: unknown option, missing value, stray argument.
            (["--bogus"], ["--bogus"]),
            (["-x"], ["-x"]),
            (["-l"], ["-l"]),
            (["-f", "stray"], ["stray"]),
            (["genkey", "a", "b"], ["b"]),
        ]
        for (args, mentions) in cases {
            assertOneLineError(try Squtun.run(args), status: 64, mentions: mentions)
        }
    }

    // MARK: genkey

    func testGenkeyToStdout() throws {
        let a = try Squtun.run(["genkey"])
        let b = try Squtun.run(["genkey"])
        for r in [a, b] {
            XCTAssertEqual(r.status, 0)
            XCTAssertEqual(r.stderr, "")
            XCTAssertEqual(r.stdout.utf8.count, 65)
            XCTAssertTrue(r.stdout.hasSuffix("\n"))
            XCTAssertTrue(r.stdout.dropLast().allSatisfy { "0123456789abcdef".contains($0) }, r.stdout)
        }
        XCTAssertNotEqual(a.stdout, b.stdout)
    }

    func testGenkeyFileIsAcceptedAndNotOverwritten() throws {
        let path = dir + "/key"
        let first = try Squtun.run(["genkey", path])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(first.stdout, "")
        XCTAssertEqual(first.stderr, "")
        XCTAssertEqual(mode(path), 0o600)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(before.count, 65)
        // The reader the daemon uses accepts it, in-process and in the binary.
        XCTAssertEqual(try KeyFile.read(path: path).count, 32)
        // The daemon checks the key file first: with the key accepted, the next
        // check (the user) is what fails.
        let tunnel = try Squtun.run(["-i", "tun0", "-k", path, "-u", "nosuchuser-sqt"])
        assertOneLineError(tunnel, status: 1, mentions: ["user 'nosuchuser-sqt' does not exist"])

        let second = try Squtun.run(["genkey", path])
        assertOneLineError(second, status: 1, mentions: [path, "exists"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(mode(path), 0o600)
    }

    // MARK: keypairs

    func testGenkeyKeypairAndPubkey() throws {
        let name = dir + "/host"
        let made = try Squtun.run(["genkey", "--keypair", name])
        XCTAssertEqual(made.status, 0, made.stderr)
        XCTAssertEqual(mode(name + ".key"), 0o600)
        XCTAssertEqual(mode(name + ".pub"), 0o644)
        let pub = try String(contentsOfFile: name + ".pub", encoding: .utf8)
        XCTAssertEqual(made.stdout, pub, "the public key is printed too")
        XCTAssertTrue(pub.hasPrefix("squtun-public-") && pub.utf8.count == 14 + 64 + 1, pub)
        let key = try String(contentsOfFile: name + ".key", encoding: .utf8)
        XCTAssertTrue(key.hasPrefix("squtun-private-") && key.utf8.count == 15 + 64 + 1, "a private key file")
        let again = try Squtun.run(["pubkey", name + ".key"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stdout, pub)
        // Never overwritten; with the .pub in place not even a new .key is made.
        let second = try Squtun.run(["genkey", "--keypair", name])
        assertOneLineError(second, status: 1, mentions: [name + ".pub", "exists"])
        XCTAssertEqual(try String(contentsOfFile: name + ".key", encoding: .utf8), key)
        XCTAssertEqual(unlink(name + ".key"), 0)
        assertOneLineError(try Squtun.run(["genkey", "--keypair", name]), status: 1, mentions: [name + ".pub", "exists"])
        XCTAssertEqual(access(name + ".key", F_OK), -1, "no orphan .key")
        // pubkey refuses the other kinds, each with its own line.
        assertOneLineError(try Squtun.run(["pubkey", name + ".pub"]), status: 1, mentions: ["holds a public key already"])
        let psk = dir + "/psk"
        XCTAssertEqual(try Squtun.run(["genkey", psk]).status, 0)
        assertOneLineError(try Squtun.run(["pubkey", psk]), status: 1, mentions: [psk, "holds a PSK, which has no public key"])
        assertOneLineError(try Squtun.run(["genkey", "--keypair", name, "extra"]), status: 64, mentions: ["--keypair"])
    }

    func testHelpListsKeypairOptionsAndCommands() throws {
        let r = try Squtun.run(["-h"])
        for text in ["--peer-key <file-or-key>", "--psk <file>", "genkey --keypair NAME", "squtun pubkey [FILE]"] {
            XCTAssertTrue(r.stdout.contains(text), "help lacks '\(text)'")
        }
    }

    // MARK: key file errors

    func testWorldReadableKeyFileRefused() throws {
        let path = dir + "/key"
        XCTAssertEqual(try Squtun.run(["genkey", path]).status, 0)
        XCTAssertEqual(chmod(path, 0o644), 0)
        let r = try Squtun.run(["-i", "tun0", "-k", path])
        assertOneLineError(r, status: 1, mentions: [path, "0644", "chmod 600"])
        XCTAssertNotEqual(r.status, 0)
    }

    func testMissingKeyFile() throws {
        let path = dir + "/none"
        assertOneLineError(try Squtun.run(["-i", "tun0", "-k", path]), status: 1,
                           mentions: [path, "No such file or directory"])
    }
}
