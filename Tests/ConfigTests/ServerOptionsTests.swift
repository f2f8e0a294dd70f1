import Foundation
import ArgumentParser
import XCTest
@testable import SqutunConfig
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// Server mode's options and a client's --id: what they make of the
/// settings, and every combination the modes refuse, each one line and a
/// usage error, from the command line and from a config file.
final class ServerOptionsTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var dir: String { temporary.path }

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory("squtun-server-options")
    }

    override func tearDown() {
        temporary.remove()
    }

    private func write(_ text: String) -> String {
        let path = dir + "/server.conf"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        return path
    }

    private func tunnel(_ args: [String]) throws -> TunnelConfig { try CommandLineRun.tunnel(args) }

    private func failure(_ args: [String]) -> (message: String, usage: Bool)? { CommandLineRun.failure(args) }

    private func assertRefused(_ args: [String], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let f = failure(args) else { return XCTFail("\(args): accepted", file: file, line: line) }
        XCTAssertEqual(f.message, message, "\(args)", file: file, line: line)
        XCTAssertTrue(f.usage, "\(args): not a usage error", file: file, line: line)
        XCTAssertFalse(f.message.contains("\n"), file: file, line: line)
    }

    // MARK: What a server's options make

    func testPSKServerDefaults() throws {
        let c = try tunnel(["--server", "--peers", "/etc/squtun/peers"])
        XCTAssertEqual(c.server, ServerSettings(peersDirectory: "/etc/squtun/peers", hook: nil, idleTimeoutSeconds: 0,
                                                maxClients: 1024, tunPattern: "sqc%d", serverKeyPath: nil, pskPath: nil))
        XCTAssertEqual(c.server?.clientKeyKind, .psk)
        XCTAssertTrue(c.peers.isEmpty, "a server has no peer of its own")
        XCTAssertEqual(c.interface, "sqc", "the server's name: the pattern without %d")
        XCTAssertEqual(c.pidfile, "/run/squtun/squtun-sqc.pid")
        XCTAssertEqual(c.controlSocket, "/run/squtun/squtun-sqc.sock")
        XCTAssertEqual(c.localPort, 3456)
        XCTAssertEqual(c.user, "squtun")
        XCTAssertNil(c.clientID)
    }

    func testKeypairServerWithEverything() throws {
        let c = try tunnel(["--server", "--peers", "/p", "-k", "/etc/squtun/server.key", "--psk", "/etc/squtun/mix.psk",
                            "-i", "vpn%d.c", "--hook", "/usr/local/sbin/hook", "up", "verbose=no", "-a", "25",
                            "--idle-timeout", "600", "--max-clients", "65536", "-l", "4000", "--cipher", "aes-256-gcm",
                            "-b", "198.51.100.1", "--no-offload"])
        let s = try XCTUnwrap(c.server)
        XCTAssertEqual(s.hook, ["/usr/local/sbin/hook", "up", "verbose=no"], "--hook takes the words up to the next option")
        XCTAssertEqual(s.idleTimeoutSeconds, 600)
        XCTAssertEqual(s.maxClients, 65536)
        XCTAssertEqual(s.tunPattern, "vpn%d.c")
        XCTAssertEqual(s.serverKeyPath, "/etc/squtun/server.key")
        XCTAssertEqual(s.pskPath, "/etc/squtun/mix.psk")
        XCTAssertEqual(s.clientKeyKind, .publicKey)
        XCTAssertEqual(c.interface, "vpn.c")
        XCTAssertEqual(c.keepaliveSeconds, 25)
        XCTAssertEqual(c.localPort, 4000)
        XCTAssertEqual(c.cipher, .aes256GCM)
        XCTAssertEqual(c.bindAddress, "198.51.100.1")
        XCTAssertFalse(c.offload)
    }

    /// On the command line a word starting with '-' ends --hook's list (a
    /// config file's hook line has no such limit).
    func testHookWordsEndAtTheNextOption() throws {
        let c = try tunnel(["--server", "--hook", "/bin/hook", "a", "b", "--peers", "/p"])
        XCTAssertEqual(c.server?.hook, ["/bin/hook", "a", "b"])
        XCTAssertEqual(c.server?.peersDirectory, "/p")
        XCTAssertEqual(try tunnel(["--server", "--peers", "/p", "--hook", "/bin/hook", "-f"]).server?.hook, ["/bin/hook"])
    }

    func testClientID() throws {
        let c = try tunnel(["-p", "vpn.example.org", "-i", "tun0", "-k", "/k", "--id", "laptop-01"])
        XCTAssertEqual(c.clientID, "laptop-01")
        XCTAssertNil(c.server)
        XCTAssertEqual(c.peers.count, 1)
        XCTAssertNil(try tunnel(["-i", "tun0", "-k", "/k"]).clientID)
    }

    func testPatternEdges() throws {
        XCTAssertEqual(try tunnel(["--server", "--peers", "/p", "-i", "%dx"]).interface, "x")
        // 15 bytes with %d: the names up to 99 clients fit.
        XCTAssertEqual(try tunnel(["--server", "--peers", "/p", "-i", "abcdefghijklm%d", "--max-clients", "100"])
                           .server?.tunPattern, "abcdefghijklm%d")
        XCTAssertEqual(try tunnel(["--server", "--peers", "/p", "-i", "abcdefghijk%d", "--max-clients", "10000"])
                           .server?.maxClients, 10000)
        XCTAssertEqual(try tunnel(["--server", "--peers", "/p", "--max-clients", "1"]).server?.maxClients, 1)
        XCTAssertEqual(try tunnel(["--server", "--peers", "/p", "--idle-timeout", "86400"]).server?.idleTimeoutSeconds,
                       86400)
    }

    // MARK: What the modes refuse

    func testServerRefusesPointToPointAndClientOptions() {
        let base = ["--server", "--peers", "/p"]
        assertRefused(base + ["-p", "198.51.100.2"], "-p/--peer: not valid with --server (clients name the server; "
                      + "it answers each at the address it hears it from)")
        assertRefused(base + ["-r", "3457"], "-r/--remote-port: not valid with --server (clients name the server's "
                      + "port; it answers each at the port it hears it from)")
        assertRefused(base + ["-k", "/k", "--peer-key", "/b.pub"], "--peer-key: not valid with --server (a keypair "
                      + "server's client public keys are the files in --peers)")
        assertRefused(base + ["--id", "alice"], "--id: not valid with --server (--id names this end as a client of a server)")
        assertRefused(base + ["--psk", "/m.psk"], "--psk: only valid together with -k/--key in server mode (a keypair "
                      + "server's private key; a PSK server's client PSKs are the files in --peers)")
        assertRefused(["--server"], "--peers: required with --server")
        assertRefused(["--server", "-i", "sqc%d", "-k", "/k"], "--peers: required with --server")
    }

    func testServerInterfaceIsAPattern() {
        let base = ["--server", "--peers", "/p"]
        assertRefused(base + ["-i", "tun0"], "-i/--interface: in server mode -i is the clients' tun name pattern, "
                      + "with %d for the number (e.g. sqc%d) 'tun0'")
        assertRefused(base + ["-i", "a%d%d"], "-i/--interface: a tun name pattern needs exactly one %d and no other % 'a%d%d'")
        assertRefused(base + ["-i", "a%s"], "-i/--interface: a tun name pattern needs exactly one %d and no other % 'a%s'")
        assertRefused(base + ["-i", "a%"], "-i/--interface: a tun name pattern needs exactly one %d and no other % 'a%'")
        assertRefused(base + ["-i", "a%d%"], "-i/--interface: a tun name pattern needs exactly one %d and no other % 'a%d%'")
        assertRefused(base + ["-i", "%d"], "-i/--interface: a tun name pattern needs a name around its %d '%d'")
        assertRefused(base + ["-i", ".%d."], "-i/--interface: a tun name pattern needs a name around its %d '.%d.'")
        assertRefused(base + ["-i", "abcdefghijklmn%d"],
                      "-i/--interface: tun name pattern longer than 15 bytes (%d counts as 2) 'abcdefghijklmn%d'")
        assertRefused(base + ["-i", "sq/%d"],
                      "-i/--interface: tun name pattern may only use A-Z a-z 0-9 _ . - and %d (not '/') 'sq/%d'")
        assertRefused(base + ["-i", "sq c%d"],
                      "-i/--interface: tun name pattern may only use A-Z a-z 0-9 _ . - and %d (not byte 0x20) 'sq c%d'")
        // The names the kernel makes must fit too: 13 bytes and 4 digits are 17.
        assertRefused(base + ["-i", "abcdefghijklm%d"], "-i/--interface: with up to 1024 clients the names reach 17 "
                      + "bytes, more than 15 (a shorter pattern, or a lower --max-clients) 'abcdefghijklm%d'")
        assertRefused(base + ["-i", "abcdefghijk%d", "--max-clients", "65536"], "-i/--interface: with up to 65536 "
                      + "clients the names reach 16 bytes, more than 15 (a shorter pattern, or a lower --max-clients) "
                      + "'abcdefghijk%d'")
    }

    func testServerValues() {
        let base = ["--server", "--peers", "/p"]
        assertRefused(["--server", "--peers", "etc/peers"], "--peers: must be an absolute path 'etc/peers'")
        assertRefused(["--server", "--peers", ""], "--peers: must be an absolute path ''")
        assertRefused(base + ["--hook", "hook.sh"], "--hook: must be an absolute path 'hook.sh'")
        assertRefused(base + ["--idle-timeout", "-1"], "--idle-timeout: must not be negative '-1'")
        assertRefused(base + ["--idle-timeout", "86401"], "--idle-timeout: out of range 0-86400 '86401'")
        assertRefused(base + ["--idle-timeout", "1m"], "--idle-timeout: not a whole number '1m'")
        assertRefused(base + ["--max-clients", "0"], "--max-clients: out of range 1-65536 '0'")
        assertRefused(base + ["--max-clients", "65537"], "--max-clients: out of range 1-65536 '65537'")
        assertRefused(base + ["--max-clients", "many"], "--max-clients: not a whole number 'many'")
        // ArgumentParser's own: --hook without its program.
        XCTAssertEqual(failure(base + ["--hook"])?.usage, true)
        XCTAssertEqual(failure(base + ["--hook", "-f"])?.usage, true)
    }

    func testServerOptionsRefusedWithoutServer() {
        let base = ["-i", "tun0", "-k", "/k"]
        assertRefused(base + ["--peers", "/p"], "--peers is a server option: only valid together with --server")
        assertRefused(base + ["--hook", "/bin/hook"], "--hook is a server option: only valid together with --server")
        assertRefused(base + ["--idle-timeout", "60"], "--idle-timeout is a server option: only valid together with --server")
        assertRefused(base + ["--max-clients", "4"], "--max-clients is a server option: only valid together with --server")
        assertRefused(["-i", "tun%d", "-k", "/k"], "-i/--interface: a tun name pattern (%d) is for --server; "
                      + "a tunnel's -i names its device 'tun%d'")
        // A value is checked before the mode: the value's line, not the mode's.
        assertRefused(base + ["--max-clients", "0"], "--max-clients: out of range 1-65536 '0'")
    }

    func testClientIDRule() {
        let base = ["-i", "tun0", "-k", "/k"]
        assertRefused(base + ["--id", ""], "--id: empty identifier ''")
        assertRefused(base + ["--id", ".alice"], "--id: identifier must start with a letter or a digit '.alice'")
        assertRefused(base + ["--id=-alice"], "--id: identifier must start with a letter or a digit '-alice'")
        assertRefused(base + ["--id", "a/b"], "--id: identifier may only use A-Z a-z 0-9 . _ - 'a/b'")
        assertRefused(base + ["--id", "bjørn"], "--id: identifier may only use A-Z a-z 0-9 . _ - 'bj\\xc3\\xb8rn'")
        assertRefused(base + ["--id", String(repeating: "a", count: 33)],
                      "--id: identifier longer than 32 bytes '\(String(repeating: "a", count: 33))'")
    }

    // MARK: The config file

    func testServerFromAConfigFile() throws {
        let path = write("""
            server
            peers /etc/squtun/peers
            interface vpn%d
            hook /usr/local/sbin/squtun-hook  up\t--log
            idle-timeout 120
            max-clients 16
            key /etc/squtun/server.key
            """)
        let c = try tunnel(["--config", path])
        XCTAssertEqual(c.server, ServerSettings(peersDirectory: "/etc/squtun/peers",
                                                hook: ["/usr/local/sbin/squtun-hook", "up", "--log"],
                                                idleTimeoutSeconds: 120, maxClients: 16, tunPattern: "vpn%d",
                                                serverKeyPath: "/etc/squtun/server.key"))
        XCTAssertEqual(c.pidfile, "/run/squtun/squtun-vpn.pid")
        // The command line overrides the file's values, --hook's words as a whole.
        let o = try tunnel(["--config", path, "--hook", "/bin/other", "--max-clients", "8", "-i", "sv%d"])
        XCTAssertEqual(o.server?.hook, ["/bin/other"])
        XCTAssertEqual(o.server?.maxClients, 8)
        XCTAssertEqual(o.server?.tunPattern, "sv%d")
        XCTAssertEqual(o.server?.idleTimeoutSeconds, 120)
    }

    /// The mode may come from one source and the options from the other:
    /// each is judged once both are read.
    func testModeAndOptionsFromDifferentSources() throws {
        let serverFile = write("server\npeers /p\n")
        XCTAssertEqual(try tunnel(["--config", serverFile, "-i", "s%d"]).server?.tunPattern, "s%d")
        assertRefused(["--config", serverFile, "-p", "198.51.100.2"], "-p/--peer: not valid with --server (clients "
                      + "name the server; it answers each at the address it hears it from)")
        let peersFile = write("peers /p\nidle-timeout 60\n")
        XCTAssertEqual(try tunnel(["--config", peersFile, "--server"]).server?.idleTimeoutSeconds, 60)
        assertRefused(["--config", peersFile, "-i", "t", "-k", "/k"],
                      "\(peersFile):1: peers is a server option: only valid together with --server")
        let clientFile = write("peer 198.51.100.2\nkey /k\ninterface tun0\nid alice\n")
        XCTAssertEqual(try tunnel(["--config", clientFile]).clientID, "alice")
        assertRefused(["--config", clientFile, "--server", "--peers", "/p"],
                      "\(clientFile):1: peer: not valid with --server (clients name the server; it answers each at "
                      + "the address it hears it from)")
        // -r on the command line, its peer in the file: accepted once both are read.
        let peerFile = write("peer 198.51.100.2\n")
        XCTAssertEqual(try tunnel(["--config", peerFile, "-r", "4000", "-i", "t", "-k", "/k"]).remotePort, 4000)
    }

    func testConfigFileValuesChecked() {
        let cases: [(String, String)] = [
            ("server yes\n", "server: is a flag and takes no value 'yes'"),
            ("peers etc/p\n", "peers: must be an absolute path 'etc/p'"),
            ("hook up.sh arg\n", "hook: must be an absolute path 'up.sh'"),
            ("idle-timeout -5\n", "idle-timeout: must not be negative '-5'"),
            ("max-clients 70000\n", "max-clients: out of range 1-65536 '70000'"),
            ("id -x\n", "id: identifier must start with a letter or a digit '-x'"),
            ("interface a%d%d\n", "interface: a tun name pattern needs exactly one %d and no other % 'a%d%d'"),
            ("peers\n", "no value given for 'peers'"),
        ]
        for (text, message) in cases {
            let path = write(text)
            assertRefused(["--config", path], "\(path):1: \(message)")
        }
    }

    /// Settings built directly: a server holds no peers, a tunnel at least one.
    func testServerSettingsInitialiser() {
        let settings = ServerSettings(peersDirectory: "/p", tunPattern: "c%dx")
        let c = TunnelConfig(server: settings, localPort: 1, keepaliveSeconds: 0, skewSeconds: 30, bindAddress: nil,
                             foreground: true, user: "squtun", chrootDirectory: "/e", pidfile: "/p.pid",
                             controlSocket: "/p.sock")
        XCTAssertEqual(c.interface, "cx")
        XCTAssertEqual(c.server?.maxClients, ServerSettings.defaultMaxClients)
        XCTAssertTrue(c.peers.isEmpty)
        XCTAssertEqual(ServerSettings.name(ofPattern: "sqc%d"), "sqc")
        XCTAssertEqual(ServerSettings.name(ofPattern: "%dsqc"), "sqc")
        XCTAssertEqual(ServerSettings.name(ofPattern: "s%dq"), "sq")
    }
}
