import Foundation
import XCTest
@testable import SqutunConfig
import Shared
#if canImport(Glibc)
import Glibc
#endif

/// The server's peers directory, with real files in a temporary directory:
/// each rule breaks one file, which gets its one line while the others are
/// served; an unusable directory is one error.
final class PeersDirectoryTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var dir: String { temporary.path }
    private let me = getuid()

    static let pskA = String(repeating: "1f", count: 32)
    static let pskB = String(repeating: "2e", count: 32)
    static let pskC = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
    static let publicA = "squtun-public-" + String(repeating: "a1", count: 32)
    static let publicB = "squtun-public-" + String(repeating: "b2", count: 32)
    static let privateA = "squtun-private-" + String(repeating: "c3", count: 32)

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory("squtun-peers-test")
    }

    override func tearDown() {
        temporary.remove()
    }

    /// A file `name` in the directory holding `text`, with exactly `mode`
    /// (not narrowed by the umask) and, if given, owned by `owner`.
    private func put(_ name: String, _ text: String, mode: mode_t = 0o600, owner: uid_t? = nil,
                     file: StaticString = #filePath, line: UInt = #line) {
        let fd = open(dir + "/" + name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0, "create \(name)", file: file, line: line)
        let bytes = Array(text.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }, bytes.count, file: file, line: line)
        XCTAssertEqual(fchmod(fd, mode), 0, file: file, line: line)
        if let owner { XCTAssertEqual(fchown(fd, owner, gid_t(0)), 0, "chown \(name)", file: file, line: line) }
        close(fd)
    }

    private func scan(_ expecting: PeersDirectory.Expecting, owner: UInt32? = nil,
                      maxEntries: Int = PeersDirectory.maxEntries) throws -> (clients: [ClientFile], problems: [String]) {
        try PeersDirectory.scan(path: dir, expecting: expecting, owner: owner ?? me, maxEntries: maxEntries)
    }

    private func hex(_ key: SecretBytes) -> String {
        key.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    private func scanError(_ path: String, owner: UInt32? = nil) -> String? {
        do {
            _ = try PeersDirectory.scan(path: path, expecting: .psk, owner: owner ?? me)
            return nil
        } catch {
            XCTAssertFalse(error.isUsageError)
            return error.description
        }
    }

    // MARK: A PSK server

    func testGoodFilesAreClientsSortedByName() throws {
        put("bob", Self.pskB + "\n", mode: 0o400)
        put("alice", "  " + Self.pskA.uppercased() + "\r\n")
        put("laptop-01.example", Self.pskC)
        let (clients, problems) = try scan(.psk)
        XCTAssertEqual(problems, [])
        XCTAssertEqual(clients.map(\.name), ["alice", "bob", "laptop-01.example"])
        XCTAssertEqual(clients.map(\.keyId), [0x44c3_77d9, 0xa954_024a, 0x37f4_0f04], "PROTOCOL.md's key id vectors")
        XCTAssertEqual(clients.map { hex($0.key) }, [Self.pskA, Self.pskB, Self.pskC])
    }

    func testEmptyDirectory() throws {
        let (clients, problems) = try scan(.psk)
        XCTAssertTrue(clients.isEmpty)
        XCTAssertEqual(problems, [])
    }

    /// Every rule broken once: each file its own line, starting with its path;
    /// the good file still served; names starting with '.' not a word.
    func testEachBrokenRuleIsOneLine() throws {
        put("alice", Self.pskA)
        put(".alice.swp", "junk", mode: 0o666)
        put(".hidden", Self.pskB)
        put("bad name", Self.pskB)
        put("-x", Self.pskB)
        XCTAssertEqual(symlink(dir + "/alice", dir + "/link"), 0)
        XCTAssertEqual(mkdir(dir + "/sub", 0o700), 0)
        XCTAssertEqual(mkfifo(dir + "/pipe", 0o600), 0)
        put("readable", Self.pskB, mode: 0o644)
        put("groupwrite", Self.pskB, mode: 0o620)
        put("otherwrite", Self.pskB, mode: 0o602)
        put("large", String(repeating: "0", count: KeyFile.maxFileSize + 1))
        put("short", "abc\n")
        put("badchar", String(Self.pskB.dropLast()) + "g")
        put("zeros", String(repeating: "0", count: 64))
        put("public", Self.publicA)
        put("private", Self.privateA)
        put("empty", "")
        let (clients, problems) = try scan(.psk)
        XCTAssertEqual(clients.map(\.name), ["alice"])
        let d = dir
        XCTAssertEqual(problems, [
            "\(d)/-x: identifier must start with a letter or a digit, so no client's --id; rename it, or start its "
                + "name with '.' to keep it unread",
            "'\(d)/bad name': identifier may only use A-Z a-z 0-9 . _ -, so no client's --id; rename it, or start "
                + "its name with '.' to keep it unread",
            "\(d)/badchar: character 'g' at byte offset 63 is not a hex digit; make one with: squtun genkey",
            "\(d)/empty: found 0 hex digits, need exactly 64; make one with: squtun genkey",
            "\(d)/groupwrite: mode 0620 lets others change the key; chmod 600 \(d)/groupwrite",
            "\(d)/large: 4097 bytes is too large for a key file (at most 4096)",
            "\(d)/link: a symbolic link; a client's file must be the file itself",
            "\(d)/otherwrite: mode 0602 lets others change the key; chmod 600 \(d)/otherwrite",
            "\(d)/pipe: not a regular file",
            "\(d)/private: holds a PRIVATE key; a private key never leaves its host: put the client's NAME.pub here",
            "\(d)/public: holds a public key, but this server has no private key (-k): its client files are PSKs "
                + "(squtun genkey); for a keypair server give -k its private key",
            "\(d)/readable: mode 0644 lets others read the key; chmod 600 \(d)/readable",
            "\(d)/short: found 3 hex digits, need exactly 64; make one with: squtun genkey",
            "\(d)/sub: not a regular file",
            "\(d)/zeros: the key is all zeros; make one with 'squtun genkey'",
        ])
        for line in problems { XCTAssertFalse(line.contains("\n"), line) }
    }

    /// A name that is not UTF-8 is refused (shown escaped), not mangled into another name.
    func testNonUTF8NameIsRefusedAndEscaped() throws {
        let name: [UInt8] = Array("caf".utf8) + [0xe9]
        let path = Array(dir.utf8) + [UInt8(ascii: "/")] + name + [0]
        let fd = path.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_WRONLY | O_CREAT | O_EXCL, 0o600) }
        }
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        let (clients, problems) = try scan(.psk)
        XCTAssertTrue(clients.isEmpty)
        XCTAssertEqual(problems, ["'\(dir)/caf\\xe9': identifier may only use A-Z a-z 0-9 . _ -, so no "
                                  + "client's --id; rename it, or start its name with '.' to keep it unread"])
    }

    /// Two identifiers with one key id (PROTOCOL.md's keyid-shared vectors):
    /// the second in byte order is refused, naming the first.
    func testSharedKeyIdRefusesTheSecond() throws {
        put("client-72069", Self.pskB)
        put("client-29758", Self.pskA)
        let (clients, problems) = try scan(.psk)
        XCTAssertEqual(clients.map(\.name), ["client-29758"])
        XCTAssertEqual(clients.first?.keyId, 0x3294_eb25)
        XCTAssertEqual(problems, ["\(dir)/client-72069: key id 0x3294eb25 is also the one of \(dir)/client-29758, which "
                                  + "keeps it (two identifiers with one key id); rename this client"])
    }

    /// One key, two clients: the second by name is refused, whatever the file order.
    func testSharedKeyRefusesTheSecond() throws {
        put("zed", Self.pskA)
        put("bob", Self.pskB)
        put("amy", Self.pskA.uppercased())
        put("carl", Self.pskA)
        let (clients, problems) = try scan(.psk)
        XCTAssertEqual(clients.map(\.name), ["amy", "bob"])
        XCTAssertEqual(problems, [
            "\(dir)/carl: the same key as \(dir)/amy, which keeps it; every client needs a key of its own",
            "\(dir)/zed: the same key as \(dir)/amy, which keeps it; every client needs a key of its own",
        ])
    }

    func testWrongOwner() throws {
        try XCTSkipIf(me != 0, "chown needs root")
        put("alice", Self.pskA)
        put("mallory", Self.pskB, owner: 12345)
        let (clients, problems) = try scan(.psk, owner: 0)
        XCTAssertEqual(clients.map(\.name), ["alice"])
        XCTAssertEqual(problems, ["\(dir)/mallory: owned by uid 12345, who can change the key; chown root \(dir)/mallory"])
    }

    func testEntriesAreBounded() throws {
        for i in 0..<20 { put("c\(i)", String(format: "%064x", i + 1)) }
        let (clients, problems) = try scan(.psk, maxEntries: 8)
        XCTAssertLessThanOrEqual(clients.count, 8)
        XCTAssertEqual(problems, ["\(dir): more than 8 entries; the rest are not read"])
        XCTAssertEqual(try scan(.psk, maxEntries: 22).clients.count, 20, "20 files, '.' and '..'")
    }

    // MARK: A keypair server

    func testKeypairServerTakesPublicKeys() throws {
        put("alice", Self.publicA + "\n", mode: 0o644)
        put("bob", Self.publicB, mode: 0o444)
        put("carol", Self.pskA)
        put("dave", Self.privateA)
        put("erin", Self.publicB, mode: 0o664)
        put("frank", Self.publicA.uppercased(), mode: 0o600)
        let (clients, problems) = try scan(.publicKey)
        XCTAssertEqual(clients.map(\.name), ["alice", "bob"])
        XCTAssertEqual(clients.map { hex($0.key) }, [String(repeating: "a1", count: 32), String(repeating: "b2", count: 32)])
        XCTAssertEqual(problems, [
            "\(dir)/carol: holds a PSK, but this server is a keypair server (-k holds its private key): its client files "
                + "are the clients' public keys (their NAME.pub)",
            "\(dir)/dave: holds a PRIVATE key; a private key never leaves its host: put the client's NAME.pub here",
            "\(dir)/erin: mode 0664 lets others change the key; chmod 644 \(dir)/erin",
            "\(dir)/frank: the same key as \(dir)/alice, which keeps it; every client needs a key of its own",
        ])
    }

    /// A server's -k: a private key, never a PSK.
    func testServerKeyIsAPrivateKey() throws {
        put("server.key", Self.privateA + "\n")
        XCTAssertEqual(hex(try KeyFile.readServerKey(path: dir + "/server.key")), String(repeating: "c3", count: 32))
        put("server.psk", Self.pskA)
        XCTAssertThrowsError(try KeyFile.readServerKey(path: dir + "/server.psk")) { error in
            let e = error as? ConfigError
            XCTAssertEqual(e?.description, "key file '\(dir)/server.psk' holds a PSK: in server mode -k takes the "
                           + "server's private key; client PSKs are the files in --peers")
            XCTAssertEqual(e?.isUsageError, true)
        }
        put("server.pub", Self.publicA, mode: 0o644)
        XCTAssertThrowsError(try KeyFile.readServerKey(path: dir + "/server.pub")) { error in
            XCTAssertEqual(error as? ConfigError, .keyWrongKind(path: dir + "/server.pub", role: .tunnelKey, holds: .publicKey))
        }
        put("open.key", Self.privateA, mode: 0o644)
        XCTAssertThrowsError(try KeyFile.readServerKey(path: dir + "/open.key")) { error in
            XCTAssertEqual(error as? ConfigError, .keyFilePermissions(path: dir + "/open.key", mode: 0o100644))
        }
    }

    // MARK: The directory itself

    func testUnusableDirectoryIsOneError() throws {
        XCTAssertEqual(scanError(dir + "/none"),
                       "--peers '\(dir)/none': cannot open the directory (No such file or directory)")
        put("file", Self.pskA)
        XCTAssertEqual(scanError(dir + "/file"), "--peers '\(dir)/file': cannot open the directory (Not a directory)")
        XCTAssertEqual(mkdir(dir + "/open", 0o700), 0)
        XCTAssertEqual(chmod(dir + "/open", 0o757), 0)
        XCTAssertEqual(scanError(dir + "/open"),
                       "--peers '\(dir)/open': mode 0757 lets others add clients; chmod 755 \(dir)/open")
        XCTAssertEqual(chmod(dir + "/open", 0o775), 0)
        XCTAssertEqual(scanError(dir + "/open"),
                       "--peers '\(dir)/open': mode 0775 lets others add clients; chmod 755 \(dir)/open")
        XCTAssertEqual(chmod(dir + "/open", 0o755), 0)
        XCTAssertNil(scanError(dir + "/open"))
    }

    func testDirectoryOwnedByAnotherUser() throws {
        try XCTSkipIf(me != 0, "chown needs root")
        XCTAssertEqual(chown(dir, 12345, 0), 0)
        XCTAssertEqual(scanError(dir, owner: 0),
                       "--peers '\(dir)': owned by uid 12345, not root; whoever owns it can add clients: chown root \(dir)")
        XCTAssertEqual(chown(dir, 0, 0), 0)
        XCTAssertNil(scanError(dir, owner: 0))
    }
}
