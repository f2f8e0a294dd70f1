import Foundation
import XCTest
@testable import SqutunConfig
#if canImport(Glibc)
import Glibc
#endif

/// The validated settings (`TunnelConfig`) and their list of peers: what the
/// command line and the config file make of one peer.
final class SettingsTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/squtun-settings-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        XCTAssertNotNil(made)
        dir = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func write(_ text: String) -> String {
        let path = dir + "/tun0.conf"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return path
    }

    private func tunnel(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> TunnelConfig {
        guard case .tunnel(let c) = try TunnelOptions.parse(args).resolve() else {
            XCTFail("\(args) is not a tunnel invocation", file: file, line: line)
            throw ConfigError.missingOption(option: "-i", when: "")
        }
        return c
    }

    func testOnePeerFromTheCommandLineEqualsOneFromAConfigFile() throws {
        let fromCommandLine = try tunnel(["-p", "198.51.100.2", "-r", "3457", "-i", "tun0", "-k", "/etc/k", "-a", "25"])
        let path = write("peer 198.51.100.2\nremote-port 3457\ninterface tun0\nkey /etc/k\nkeepalive 25\n")
        let fromFile = try tunnel(["--config", path])
        XCTAssertEqual(fromCommandLine, fromFile)
        XCTAssertEqual(fromFile.peers, [PeerSettings(host: "198.51.100.2", port: 3457, keyPath: "/etc/k")])
        // Half from each: the same settings again.
        let halfPath = write("remote-port 3457\ninterface tun0\nkeepalive 25\n")
        XCTAssertEqual(try tunnel(["--config", halfPath, "-p", "198.51.100.2", "-k", "/etc/k"]), fromCommandLine)
    }

    func testWithoutAHostTheTunnelStillHasItsOnePeer() throws {
        let c = try tunnel(["-i", "sq1", "-k", "key"])
        XCTAssertEqual(c.peers, [PeerSettings(host: nil, port: UInt16(TunnelOptions.defaultPort), keyPath: "key")])
    }

    func testTheOnePeerInitialiserMakesAListOfOne() {
        func settings(_ peers: [PeerSettings]) -> TunnelConfig {
            TunnelConfig(localPort: 1, peers: peers, interface: "tun0", keepaliveSeconds: 0, skewSeconds: 30,
                         bindAddress: nil, foreground: true, user: "squtun", chrootDirectory: "/e",
                         pidfile: "/p.pid", controlSocket: "/p.sock")
        }
        let one = TunnelConfig(localPort: 1, peer: "vpn.example.org", remotePort: 4000, interface: "tun0",
                               keyPath: "/k", keepaliveSeconds: 0, skewSeconds: 30, bindAddress: nil,
                               foreground: true, user: "squtun", chrootDirectory: "/e", pidfile: "/p.pid",
                               controlSocket: "/p.sock")
        let first = PeerSettings(host: "vpn.example.org", port: 4000, keyPath: "/k")
        XCTAssertEqual(one, settings([first]))
        XCTAssertEqual(one.peers, [first])
        XCTAssertEqual(one.peer, "vpn.example.org")
        XCTAssertEqual(one.remotePort, 4000)
        XCTAssertEqual(one.keyPath, "/k")
        // A second peer makes different settings; the one-peer view shows the first.
        let two = settings([first, PeerSettings(host: nil, port: 3456, keyPath: "/k2")])
        XCTAssertNotEqual(one, two)
        XCTAssertEqual(two.peers.count, 2)
        XCTAssertEqual(two.keyPath, "/k")
    }

    /// The config file and the command line check a value with the same
    /// function, so the same bad value gets the same problem.
    func testOneCheckForBothSources() throws {
        for (setting, bad) in [(TunnelSetting.peer, "10.0.0.256"), (.remotePort, "0"), (.keepalive, "3601"),
                               (.bind, "vpn.example.org"), (.user, "-x"), (.pidfile, "run/x.pid")] {
            var fromCheck = ""
            do throws(ConfigError) {
                try OptionCheck.setting(setting, value: bad, label: setting.commandLineLabel)
                XCTFail("\(setting) accepted \(bad)")
            } catch { fromCheck = error.description }
            let label = "\(dir)/tun0.conf:1: \(setting.rawValue)"
            let path = write("\(setting.rawValue) \(bad)\n")
            XCTAssertThrowsError(try ConfigFile.load(path: path)) {
                XCTAssertEqual(($0 as? ConfigError)?.description,
                               label + String(fromCheck.dropFirst(setting.commandLineLabel.count)))
            }
        }
    }
}
