import ArgumentParser
import Foundation
import XCTest
@testable import SqutunConfig
import Shared
#if canImport(Glibc)
import Glibc
#endif

final class ConfigFileTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/squtun-config-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        XCTAssertNotNil(made)
        dir = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Writes `text` to a file in the test's directory and returns its path.
    private func write(_ text: String, name: String = "tun0.conf") -> String {
        let path = dir + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return path
    }

    private func resolve(_ args: [String]) throws -> TunnelOptions.Invocation {
        try TunnelOptions.parse(args).resolve()
    }

    private func tunnel(_ args: [String]) throws -> TunnelConfig {
        guard case .tunnel(let c) = try resolve(args) else { throw ConfigError.missingOption(option: "x", when: "") }
        return c
    }

    /// The one-line message and whether it is a usage error (exit 64).
    private func failure(_ args: [String]) -> (message: String, usage: Bool)? {
        do {
            _ = try resolve(args)
            return nil
        } catch let error as ConfigError {
            return (error.description, error.isUsageError)
        } catch {
            return (TunnelOptions.message(for: error), TunnelOptions.exitCode(for: error) == .validationFailure)
        }
    }

    private func parseError(_ text: String) -> String? {
        do {
            _ = try ConfigFile.parse(text, path: "/etc/squtun/tun0.conf")
            return nil
        } catch {
            return error.description
        }
    }

    // MARK: Parsing

    func testEveryLongOptionNameIsASetting() throws {
        let text = """
            # every setting, with comments and blank lines

            local-port 3456
            peer 198.51.100.2   # trailing comment
            remote-port\t3457
              interface tun0
            key /etc/squtun/tun0.key
            peer-key /etc/squtun/peer.pub
            psk /etc/squtun/tun0.psk
            keepalive 25
            skew 30
            bind 198.51.100.1
            foreground
            user squtun
            chroot /var/lib/squtun/empty
            pidfile /run/squtun/a#b.pid
            control /run/squtun/squtun-tun0.sock\r
            no-offload
            tap
            cipher chacha20-poly1305
            server
            peers /etc/squtun/peers
            hook /usr/local/sbin/squtun-hook  --verbose\tx
            idle-timeout 300
            max-clients 64
            id laptop-01
            """
        let file = try ConfigFile.parse(text, path: "f")
        XCTAssertEqual(file.entries.map(\.setting), TunnelSetting.allCases)
        XCTAssertEqual(file[.cipher]?.value, "chacha20-poly1305")
        XCTAssertEqual(file[.peer], ConfigFile.Entry(setting: .peer, value: "198.51.100.2", line: 4))
        XCTAssertEqual(file[.remotePort]?.value, "3457")
        XCTAssertEqual(file[.interface]?.line, 6)
        XCTAssertEqual(file[.foreground]?.value, nil)
        XCTAssertEqual(file[.noOffload]?.value, nil)
        XCTAssertEqual(file[.peerKey]?.value, "/etc/squtun/peer.pub")
        XCTAssertEqual(file[.psk]?.line, 9)
        XCTAssertEqual(file[.pidfile]?.value, "/run/squtun/a#b.pid", "a '#' inside a word is not a comment")
        XCTAssertEqual(file[.control]?.value, "/run/squtun/squtun-tun0.sock", "CRLF line ends are fine")
        XCTAssertEqual(file[.server]?.value, nil, "a flag")
        XCTAssertEqual(file[.hook]?.value, "/usr/local/sbin/squtun-hook  --verbose\tx")
        XCTAssertEqual(file[.id]?.value, "laptop-01")
    }

    func testEmptyAndCommentOnlyFiles() throws {
        XCTAssertEqual(try ConfigFile.parse("", path: "f").entries, [])
        XCTAssertEqual(try ConfigFile.parse("# nothing\n\n   \n\t# still nothing\n", path: "f").entries, [])
    }

    func testErrorsNameFileLineOptionAndValue() {
        let cases: [(String, String)] = [
            ("local-port 70000", "/etc/squtun/tun0.conf:1: local-port: out of range 1-65535 '70000'"),
            ("\n\npeer 10.0.0.256", "/etc/squtun/tun0.conf:3: peer: not a hostname or IPv4/IPv6 address '10.0.0.256'"),
            ("keepalive -1", "/etc/squtun/tun0.conf:1: keepalive: must not be negative '-1'"),
            ("skew 1e3", "/etc/squtun/tun0.conf:1: skew: not a whole number '1e3'"),
            ("interface tun/0", "/etc/squtun/tun0.conf:1: interface: interface name may only use A-Z a-z 0-9 _ . - (not '/') 'tun/0'"),
            ("bind example.org", "/etc/squtun/tun0.conf:1: bind: not an IPv4 or IPv6 address 'example.org'"),
            ("user -x", "/etc/squtun/tun0.conf:1: user: not a user name '-x'"),
            ("cipher aes-128-gcm", "/etc/squtun/tun0.conf:1: cipher: unknown cipher suite (use aes-256-cbc-hmac-sha256, "
                + "aes-256-gcm or chacha20-poly1305) 'aes-128-gcm'"),
            ("chroot var/empty", "/etc/squtun/tun0.conf:1: chroot: must be an absolute path 'var/empty'"),
            ("pidfile x.pid", "/etc/squtun/tun0.conf:1: pidfile: must be an absolute path 'x.pid'"),
            ("control x", "/etc/squtun/tun0.conf:1: control: must be an absolute path 'x'"),
            ("remote-port 0", "/etc/squtun/tun0.conf:1: remote-port: out of range 1-65535 '0'"),
            ("bogus 1", "/etc/squtun/tun0.conf:1: unknown option 'bogus'"),
            ("--peer 198.51.100.2", "/etc/squtun/tun0.conf:1: unknown option (write it without dashes: peer) '--peer'"),
            ("p 198.51.100.2", "/etc/squtun/tun0.conf:1: unknown option (use the long name: peer) 'p'"),
            ("mtu 1500", "/etc/squtun/tun0.conf:1: not allowed in a config file (squtun -m LINK_MTU prints the tun MTU) 'mtu'"),
            ("ipv6", "/etc/squtun/tun0.conf:1: not allowed in a config file (squtun -m LINK_MTU prints the tun MTU) 'ipv6'"),
            ("config /x", "/etc/squtun/tun0.conf:1: not allowed in a config file (config files do not include others) 'config'"),
            ("# c\npeer\n", "/etc/squtun/tun0.conf:2: no value given for 'peer'"),
            ("key   # only a comment", "/etc/squtun/tun0.conf:1: no value given for 'key'"),
            ("foreground yes", "/etc/squtun/tun0.conf:1: foreground: is a flag and takes no value 'yes'"),
            ("peer a.example\n#\npeer b.example", "/etc/squtun/tun0.conf:3: peer: given twice (first on line 1) 'b.example'"),
            ("local-port 1 2", "/etc/squtun/tun0.conf:1: local-port: not a whole number '1 2'"),
            ("peer bad\u{1b}name", "/etc/squtun/tun0.conf:1: peer: not a hostname or IPv4/IPv6 address 'bad\\x1bname'"),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(parseError(text), expected, "for \(text.debugDescription)")
            XCTAssertFalse((parseError(text) ?? "").contains("\n"))
        }
    }

    func testErrorsAreUsageErrors() throws {
        do {
            _ = try ConfigFile.parse("local-port x", path: "f")
            XCTFail("accepted")
        } catch {
            XCTAssertTrue(error.isUsageError)
            XCTAssertEqual(error.exitCode, 64)
        }
    }

    // MARK: Loading and merging with the command line

    func testFileSuppliesTheTunnel() throws {
        let path = write("""
            peer 198.51.100.2
            remote-port 3457
            local-port 3456
            interface tun0
            key /etc/squtun/tun0.key
            keepalive 59
            skew 30
            """)
        let c = try tunnel(["--config", path])
        XCTAssertEqual(c, TunnelConfig(
            localPort: 3456, peer: "198.51.100.2", remotePort: 3457, interface: "tun0",
            keyPath: "/etc/squtun/tun0.key", keepaliveSeconds: 59, skewSeconds: 30, bindAddress: nil,
            foreground: false, user: "squtun", chrootDirectory: "/var/lib/squtun/empty",
            pidfile: "/run/squtun/squtun-tun0.pid", controlSocket: "/run/squtun/squtun-tun0.sock"))
    }

    func testCommandLineOverridesTheFile() throws {
        let path = write("""
            local-port 4000
            peer 198.51.100.2
            interface tun0
            key /etc/k
            keepalive 25
            user nobody
            chroot /srv/empty
            foreground
            no-offload
            """)
        // Even an option given with its default value wins over the file.
        let c = try tunnel(["--config", path, "-l", "3456", "-i", "tun9", "-a", "0", "-u", "squtun",
                            "--chroot", "/var/lib/squtun/empty", "--pidfile", "/run/x.pid"])
        XCTAssertEqual(c.localPort, 3456)
        XCTAssertEqual(c.interface, "tun9")
        XCTAssertEqual(c.keepaliveSeconds, 0)
        XCTAssertEqual(c.user, "squtun")
        XCTAssertEqual(c.chrootDirectory, "/var/lib/squtun/empty")
        XCTAssertEqual(c.pidfile, "/run/x.pid")
        XCTAssertEqual(c.controlSocket, "/run/x.sock", "the socket follows the pid file")
        XCTAssertEqual(c.peer, "198.51.100.2")
        XCTAssertEqual(c.keyPath, "/etc/k")
        XCTAssertTrue(c.foreground, "a flag in the file is on")
        XCTAssertFalse(c.offload, "no-offload in the file turns the offloads off")
        XCTAssertEqual(try tunnel(["--config", path, "-f"]).foreground, true)
    }

    func testCipherFromTheFileAndOverridden() throws {
        let path = write("interface tun0\nkey /etc/k\ncipher aes-256-gcm\n", name: "cipher.conf")
        XCTAssertEqual(try tunnel(["--config", path]).cipher, .aes256GCM)
        XCTAssertEqual(try tunnel(["--config", path, "--cipher", "chacha20-poly1305"]).cipher, .chacha20Poly1305)
        let plain = write("interface tun0\nkey /etc/k\n", name: "plain.conf")
        XCTAssertEqual(try tunnel(["--config", plain]).cipher, .aes256CBCHMACSHA256)
    }

    /// `tap` is a flag line, the same as --tap; with a value it is refused.
    func testTapFromTheFile() throws {
        let path = write("interface tap0\nkey /etc/k\ntap\n", name: "tap.conf")
        XCTAssertTrue(try tunnel(["--config", path]).tap)
        XCTAssertTrue(try tunnel(["--config", path, "--tap"]).tap)
        let plain = write("interface tun0\nkey /etc/k\n", name: "plain.conf")
        XCTAssertFalse(try tunnel(["--config", plain]).tap)
        XCTAssertTrue(try tunnel(["--config", plain, "--tap"]).tap)
        let valued = write("interface tap0\nkey /etc/k\ntap yes\n", name: "tapyes.conf")
        XCTAssertNotNil(failure(["--config", valued]))
        let server = write("server\npeers /etc/squtun/peers\ntap\n", name: "tapserver.conf")
        XCTAssertEqual(failure(["--config", server])?.message,
                       "\(server):3: tap: not valid with --server (a server makes a tun device for each client; "
                       + "--tap is for a point-to-point tunnel)")
    }

    func testFileValueCheckedEvenWhenOverridden() {
        let path = write("interface tun0\nkey /k\nlocal-port 99999\n")
        XCTAssertEqual(failure(["--config", path, "-l", "3456"])?.message,
                       "\(path):3: local-port: out of range 1-65535 '99999'")
    }

    func testCommandLineErrorsComeFirstAndKeepTheirNames() {
        let path = write("interface tun0\nkey /k\nlocal-port 99999\n")
        XCTAssertEqual(failure(["--config", path, "-a", "x"])?.message, "-a/--keepalive: not a whole number 'x'")
    }

    func testCrossChecksNameTheFileLine() {
        let path = write("interface tun0\nkey /k\n\nremote-port 3457\n")
        let f = failure(["--config", path])
        XCTAssertEqual(f?.message, "\(path):4: remote-port: needs a peer (peer in the file, or -p/--peer) '3457'")
        XCTAssertEqual(f?.usage, true)
        // The command line's peer completes the file's remote-port.
        XCTAssertEqual(try? tunnel(["--config", path, "-p", "198.51.100.2"]).remotePort, 3457)
    }

    func testMissingInterfaceOrKeySaysWhere() {
        let noInterface = write("key /k\n", name: "a.conf")
        XCTAssertEqual(failure(["--config", noInterface])?.message,
                       "-i/--interface: required unless -m is given (or as 'interface' in \(noInterface))")
        let noKey = write("interface tun0\n", name: "b.conf")
        XCTAssertEqual(failure(["--config", noKey])?.message,
                       "-k/--key: required unless -m is given (or as 'key' in \(noKey))")
        XCTAssertEqual(try? tunnel(["--config", noKey, "-k", "/k"]).keyPath, "/k")
    }

    func testUnreadableConfigFile() {
        let missing = dir + "/nope.conf"
        let f = failure(["--config", missing])
        XCTAssertEqual(f?.message, "--config: cannot read config file (No such file or directory) '\(missing)'")
        XCTAssertEqual(f?.usage, true)
        XCTAssertEqual(failure(["--config", dir])?.message, "--config: not a regular file '\(dir)'")
        XCTAssertEqual(failure(["--config", ""])?.message, "--config: empty file name ''")
        let big = write(String(repeating: "# padding\n", count: ConfigFile.maxFileSize / 10 + 1), name: "big.conf")
        XCTAssertEqual(failure(["--config", big])?.message,
                       "--config: larger than \(ConfigFile.maxFileSize) bytes, not a config file '\(big)'")
    }

    /// A file of the source tree (an example the package installs), by its
    /// path from the top; skipped where the tree is not there.
    private func shipped(_ relative: String) throws -> String {
        var here = #filePath
        for _ in 0..<3 { here = String(here[..<here.lastIndex(of: "/")!]) }
        let path = here + "/" + relative
        guard access(path, R_OK) == 0 else { throw XCTSkip("no \(path)") }
        return path
    }

    func testShippedExampleParses() throws {
        // etc/squtun/tun0.conf.example, the file the package installs.
        let c = try tunnel(["--config", shipped("etc/squtun/tun0.conf.example")])
        XCTAssertEqual(c.interface, "tun0")
        XCTAssertEqual(c.keyPath, "/etc/squtun/tun0.key")
    }

    /// etc/squtun/server.conf.example, the server's file the package
    /// installs (squtun-server.service reads it as /etc/squtun/server.conf):
    /// it parses as it stands, and again with every setting it shows
    /// commented out (`#name value`) turned on.
    func testShippedServerExampleParses() throws {
        let example = try shipped("etc/squtun/server.conf.example")
        let c = try tunnel(["--config", example])
        let server = try XCTUnwrap(c.server, "the example is a server's")
        XCTAssertEqual(server.peersDirectory, "/etc/squtun/peers")
        XCTAssertEqual(server.hook, ["/etc/squtun/server-hook", "/etc/squtun/clients"])
        XCTAssertEqual(server.tunPattern, "sqc%d")
        XCTAssertEqual(server.serverKeyPath, "/etc/squtun/server.key")
        XCTAssertNil(server.pskPath)
        XCTAssertEqual(server.idleTimeoutSeconds, 300)
        XCTAssertEqual(server.maxClients, 1024)
        XCTAssertEqual(c.localPort, 3456)
        XCTAssertEqual(c.keepaliveSeconds, 25)
        // `squtun status sqc` finds it: the defaults, named after the pattern.
        XCTAssertEqual(c.interface, "sqc")
        XCTAssertEqual(c.pidfile, "/run/squtun/squtun-sqc.pid")
        XCTAssertEqual(c.controlSocket, "/run/squtun/squtun-sqc.sock")

        let text = try String(contentsOfFile: example, encoding: .utf8)
        var turnedOn = 0
        let all = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            guard line.hasPrefix("#"), let first = line.dropFirst().first, first.isLetter else { return line }
            turnedOn += 1
            return line.dropFirst()
        }.joined(separator: "\n")
        XCTAssertGreaterThanOrEqual(turnedOn, 5)
        let everything = try tunnel(["--config", write(all, name: "server.conf")])
        XCTAssertEqual(everything.server?.pskPath, "/etc/squtun/server.psk")
        XCTAssertEqual(everything.cipher, .aes256GCM)
        XCTAssertEqual(everything.bindAddress, "0.0.0.0")
        XCTAssertEqual(everything.user, "squtun")
        XCTAssertEqual(everything.chrootDirectory, "/var/lib/squtun/empty")
        XCTAssertEqual(everything.pidfile, "/run/squtun/squtun-sqc.pid")
    }
}
