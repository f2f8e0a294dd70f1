import Foundation
import XCTest
@testable import SqutunConfig
import Shared

/// The three key kinds (PSK, private key, public key) told apart, and every
/// mistake of giving one where another is expected: its own one line,
/// naming the file and what it holds instead.
final class KeyFormatTests: XCTestCase {
    private var dir = ""
    private let hex = "000102030405060708090a0b0c0d0e0f" + "f0e1d2c3b4a5968778695a4b3c2d1e0f"
    private var expected: [UInt8] {
        Array(0...15) + [0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f]
    }
    private var psk = "", priv = "", pub = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "squtun-keyformat-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        psk = try file("a.psk", hex + "\n")
        priv = try file("a.key", "squtun-private-" + hex + "\n")
        pub = try file("b.pub", "squtun-public-" + hex + "\n", mode: 0o644)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func file(_ name: String, _ contents: String, mode: mode_t = 0o600) throws -> String {
        let path = dir + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(contents.utf8)))
        XCTAssertEqual(chmod(path, mode), 0)
        return path
    }

    private func bytes(_ key: SecretBytes) -> [UInt8] { key.withUnsafeBytes { Array($0) } }

    /// The error `body` throws, checked to be one line naming `path`.
    private func error(naming path: String?, _ body: () throws -> Void,
                       file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            try body()
            XCTFail("accepted", file: file, line: line)
            return nil
        } catch let e as ConfigError {
            if let path { XCTAssertTrue(e.description.contains("'\(path)'"), e.description, file: file, line: line) }
            XCTAssertFalse(e.description.contains("\n"), file: file, line: line)
            return e
        } catch {
            XCTFail("not a ConfigError: \(error)", file: file, line: line)
            return nil
        }
    }

    // MARK: Each kind read where it belongs

    func testEachKindDecodes() throws {
        let k = try KeyFile.readKey(path: psk, role: .tunnelKey)
        XCTAssertEqual(k.kind, .psk)
        XCTAssertEqual(bytes(k.bytes), expected)
        let p = try KeyFile.readKey(path: priv, role: .tunnelKey)
        XCTAssertEqual(p.kind, .privateKey)
        XCTAssertEqual(bytes(p.bytes), expected)
        XCTAssertEqual(try KeyFile.readPeerKey(pub), expected)
        XCTAssertEqual(try KeyFile.readPeerKey("squtun-public-" + hex), expected, "the key's text itself")
        XCTAssertEqual(try KeyFile.readPeerKey("  SQUTUN-PUBLIC-" + hex.uppercased() + "\n"), expected,
                       "case and surrounding blanks of a paste do not matter")
        XCTAssertEqual(try KeyFile.readKey(path: psk, role: .psk).kind, .psk)
        XCTAssertEqual(try KeyFile.readKey(path: priv, role: .privateKey).kind, .privateKey)
    }

    func testPublicKeyTextRoundTrips() throws {
        let text = KeyFile.publicKeyText(expected)
        XCTAssertEqual(text, "squtun-public-" + hex)
        XCTAssertEqual(try KeyFile.readPeerKey(text), expected)
        let encoded = KeyFile.encode(expected.withUnsafeBytes { SecretBytes(copying: $0) }, prefix: KeyFile.privatePrefix)
        XCTAssertEqual(encoded.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }, "squtun-private-" + hex + "\n")
    }

    /// A PSK file is still 64 bare hex digits, read by -k as before.
    func testPSKFileUnchanged() throws {
        guard case .psk(let key) = try KeyFile.readTunnelKeys(keyPath: psk, peerKey: nil, pskPath: nil) else {
            return XCTFail("a PSK file is not a PSK")
        }
        XCTAssertEqual(bytes(key), expected)
        XCTAssertEqual(bytes(try KeyFile.read(path: psk)), expected)
    }

    func testKeypairWithAndWithoutPSK() throws {
        guard case let .keypair(k, peer, none) = try KeyFile.readTunnelKeys(keyPath: priv, peerKey: pub, pskPath: nil) else {
            return XCTFail("not a keypair setup")
        }
        XCTAssertEqual(bytes(k), expected)
        XCTAssertEqual(peer, expected)
        XCTAssertNil(none)
        guard case let .keypair(_, _, mixed) = try KeyFile.readTunnelKeys(keyPath: priv, peerKey: "squtun-public-" + hex,
                                                                          pskPath: psk) else {
            return XCTFail("not a keypair setup")
        }
        XCTAssertEqual(mixed.map(bytes), expected)
    }

    // MARK: Every mistake, its own line

    func testPublicKeyGivenToK() {
        let e = error(naming: pub) { _ = try KeyFile.readTunnelKeys(keyPath: pub, peerKey: nil, pskPath: nil) }
        XCTAssertEqual(e, .keyWrongKind(path: pub, role: .tunnelKey, holds: .publicKey))
        XCTAssertEqual(e?.description, "key file '\(pub)': holds a public key (squtun-public-…), but -k takes this host's "
                       + "PSK or private key (NAME.key); a peer's public key goes to --peer-key")
    }

    func testPrivateKeyGivenToPSK() {
        let e = error(naming: priv) { _ = try KeyFile.readTunnelKeys(keyPath: priv, peerKey: pub, pskPath: priv) }
        XCTAssertEqual(e, .keyWrongKind(path: priv, role: .psk, holds: .privateKey))
        XCTAssertEqual(e?.description, "key file '\(priv)': holds a private key, but --psk takes a PSK (64 hex digits, "
                       + "squtun genkey); this host's private key goes to -k")
    }

    func testPublicKeyGivenToPSK() {
        let e = error(naming: pub) { _ = try KeyFile.readTunnelKeys(keyPath: priv, peerKey: pub, pskPath: pub) }
        XCTAssertEqual(e, .keyWrongKind(path: pub, role: .psk, holds: .publicKey))
        XCTAssertTrue(e?.description.contains("holds a public key, but --psk takes a PSK") == true, e?.description ?? "")
    }

    func testPSKGivenToPeerKey() {
        let e = error(naming: psk) { _ = try KeyFile.readTunnelKeys(keyPath: priv, peerKey: psk, pskPath: nil) }
        XCTAssertEqual(e, .keyWrongKind(path: psk, role: .peerKey, holds: .psk))
        XCTAssertEqual(e?.description, "key file '\(psk)': holds a PSK (64 hex digits), but --peer-key takes the peer's "
                       + "public key (its NAME.pub, squtun-public-…); a PSK goes to -k, or to --psk beside a keypair")
    }

    func testPrivateKeyGivenToPeerKeyAsFileOrText() {
        let e = error(naming: priv) { _ = try KeyFile.readPeerKey(priv) }
        XCTAssertEqual(e, .keyWrongKind(path: priv, role: .peerKey, holds: .privateKey))
        XCTAssertTrue(e?.description.contains("holds a PRIVATE key, but --peer-key takes the peer's public key") == true)
        let t = error(naming: nil) { _ = try KeyFile.readPeerKey("squtun-private-" + hex) }
        XCTAssertEqual(t, .keyWrongKind(path: nil, role: .peerKey, holds: .privateKey))
        XCTAssertFalse(t?.description.contains(hex) == true, "the error does not echo a private key")
        XCTAssertTrue(t?.description.hasPrefix("--peer-key's text: holds a PRIVATE key") == true, t?.description ?? "")
    }

    func testPSKAndPublicKeyGivenToPubkey() {
        let e = error(naming: psk) { _ = try KeyFile.readKey(path: psk, role: .privateKey) }
        XCTAssertEqual(e?.description, "key file '\(psk)': holds a PSK, which has no public key; squtun pubkey reads a "
                       + "private key (squtun genkey --keypair NAME makes NAME.key)")
        let p = error(naming: pub) { _ = try KeyFile.readKey(path: pub, role: .privateKey) }
        XCTAssertEqual(p?.description, "key file '\(pub)': holds a public key already; squtun pubkey reads a private key (NAME.key)")
    }

    func testKeypairOptionsWithAPSKInK() {
        let e = error(naming: psk) { _ = try KeyFile.readTunnelKeys(keyPath: psk, peerKey: pub, pskPath: nil) }
        XCTAssertEqual(e, .keyNeedsKeypair(option: "--peer-key", keyPath: psk))
        XCTAssertEqual(e?.description, "--peer-key: only for a keypair setup, but -k's '\(psk)' holds a PSK; "
                       + "make a keypair with: squtun genkey --keypair NAME")
        XCTAssertEqual(e?.exitCode, 64)
        let m = error(naming: psk) { _ = try KeyFile.readTunnelKeys(keyPath: psk, peerKey: nil, pskPath: psk) }
        XCTAssertEqual(m, .keyNeedsKeypair(option: "--psk", keyPath: psk))
    }

    func testPrivateKeyWithoutPeerKey() {
        let e = error(naming: priv) { _ = try KeyFile.readTunnelKeys(keyPath: priv, peerKey: nil, pskPath: nil) }
        XCTAssertEqual(e?.description, "--peer-key: required when -k holds a private key ('\(priv)')")
    }

    /// All the wrong-kind lines differ from each other.
    func testEveryMistakeHasItsOwnLine() {
        let pairs: [(KeyRole, KeyKind)] = [(.tunnelKey, .publicKey), (.psk, .privateKey), (.psk, .publicKey),
                                           (.peerKey, .psk), (.peerKey, .privateKey), (.privateKey, .psk),
                                           (.privateKey, .publicKey)]
        let lines = Set(pairs.map { ConfigError.keyWrongKind(path: "f", role: $0.0, holds: $0.1).description })
        XCTAssertEqual(lines.count, pairs.count)
    }

    // MARK: Secrets' files keep the PSK file's rules; a public key's does not need them

    func testPrivateKeyModeAndOwnerChecked() throws {
        XCTAssertEqual(chmod(priv, 0o640), 0)
        let e = error(naming: priv) { _ = try KeyFile.readTunnelKeys(keyPath: priv, peerKey: pub, pskPath: nil) }
        XCTAssertEqual(e, .keyFilePermissions(path: priv, mode: UInt32(S_IFREG) | 0o640))
        if getuid() == 0 {
            XCTAssertEqual(chmod(priv, 0o600), 0)
            XCTAssertEqual(chown(priv, 65534, 65534), 0)
            let o = error(naming: priv) { _ = try KeyFile.readKey(path: priv, role: .tunnelKey) }
            XCTAssertEqual(o, .keyFileOwner(path: priv, owner: 65534, you: 0))
        }
        // A mixed-in PSK: the same rules.
        XCTAssertEqual(chmod(psk, 0o604), 0)
        let p = error(naming: psk) { _ = try KeyFile.readKey(path: psk, role: .psk) }
        XCTAssertEqual(p, .keyFilePermissions(path: psk, mode: UInt32(S_IFREG) | 0o604))
    }

    func testPublicKeyFileMayBeWorldReadable() throws {
        XCTAssertEqual(chmod(pub, 0o644), 0)
        XCTAssertEqual(try KeyFile.readPeerKey(pub), expected)
    }

    func testMalformedBodiesNameTheirOffsets() throws {
        let short = try file("short.key", "squtun-private-" + String(hex.prefix(62)))
        let e = error(naming: short) { _ = try KeyFile.readKey(path: short, role: .tunnelKey) }
        XCTAssertEqual(e, .keyFileDigitCount(path: short, found: 62, expected: 64))
        let bad = try file("bad.pub", "squtun-public-" + String(hex.prefix(10)) + "g" + String(hex.suffix(53)), mode: 0o644)
        let b = error(naming: bad) { _ = try KeyFile.readPeerKey(bad) }
        XCTAssertEqual(b, .keyFileBadCharacter(path: bad, offset: 14 + 10, byte: UInt8(ascii: "g")))
        let t = error(naming: nil) { _ = try KeyFile.readPeerKey("squtun-public-" + String(hex.prefix(40))) }
        XCTAssertEqual(t?.exitCode, 64)
        XCTAssertTrue(t?.description.hasPrefix("--peer-key: is neither a public key") == true, t?.description ?? "")
        let zero = error(naming: nil) { _ = try KeyFile.readPeerKey("squtun-public-" + String(repeating: "0", count: 64)) }
        XCTAssertNotNil(zero)
    }

    func testStandardInputReader() throws {
        let pipe = Pipe()
        pipe.fileHandleForWriting.write(Data(("squtun-private-" + hex + "\n").utf8))
        try pipe.fileHandleForWriting.close()
        let k = try KeyFile.readKey(fd: pipe.fileHandleForReading.fileDescriptor, name: "standard input", role: .privateKey)
        XCTAssertEqual(bytes(k.bytes), expected)
        let again = Pipe()
        again.fileHandleForWriting.write(Data((hex + "\n").utf8))
        try again.fileHandleForWriting.close()
        let e = error(naming: "standard input") {
            _ = try KeyFile.readKey(fd: again.fileHandleForReading.fileDescriptor, name: "standard input", role: .privateKey)
        }
        XCTAssertEqual(e, .keyWrongKind(path: "standard input", role: .privateKey, holds: .psk))
    }
}
