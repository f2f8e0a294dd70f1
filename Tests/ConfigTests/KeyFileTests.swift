import Foundation
import XCTest
@testable import SqutunConfig
import Shared

final class KeyFileTests: XCTestCase {
    private var dir = ""
    private let hex = "000102030405060708090a0b0c0d0e0f" + "f0e1d2c3b4a5968778695a4b3c2d1e0f"
    private var expected: [UInt8] {
        Array(0...15) + [0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f]
    }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "squtun-keyfile-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Writes `contents` to a new file in the temp dir with exactly `mode`.
    @discardableResult
    private func file(_ name: String, _ contents: String, mode: mode_t = 0o600) throws -> String {
        try file(name, bytes: Array(contents.utf8), mode: mode)
    }

    @discardableResult
    private func file(_ name: String, bytes: [UInt8], mode: mode_t = 0o600) throws -> String {
        let path = dir + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        XCTAssertEqual(chmod(path, mode), 0)
        return path
    }

    private func bytes(_ key: SecretBytes) -> [UInt8] {
        key.withUnsafeBytes { Array($0) }
    }

    private func readError(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            _ = try KeyFile.read(path: path)
            XCTFail("\(path) accepted", file: file, line: line)
            return nil
        } catch {
            XCTAssertEqual(error.exitCode, 1, file: file, line: line)
            XCTAssertTrue(error.description.contains(path), "\(error)", file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
            return error
        }
    }

    // MARK: Good keys

    func testGoodKeyWithNewline() throws {
        XCTAssertEqual(bytes(try KeyFile.read(path: try file("k", hex + "\n"))), expected)
    }

    func testGoodKeyWithoutNewline() throws {
        XCTAssertEqual(bytes(try KeyFile.read(path: try file("k", hex))), expected)
    }

    func testGoodKeySurroundedByWhitespace() throws {
        XCTAssertEqual(bytes(try KeyFile.read(path: try file("k", " \t\r\n" + hex + "\r\n \t\n"))), expected)
    }

    func testUpperCaseHex() throws {
        XCTAssertEqual(bytes(try KeyFile.read(path: try file("k", hex.uppercased() + "\n"))), expected)
    }

    func testMode0400Accepted() throws {
        XCTAssertEqual(bytes(try KeyFile.read(path: try file("k", hex, mode: 0o400))), expected)
    }

    func testExactly4096BytesAccepted() throws {
        let padded = hex + String(repeating: " ", count: KeyFile.maxFileSize - hex.utf8.count)
        XCTAssertEqual(padded.utf8.count, 4096)
        XCTAssertEqual(bytes(try KeyFile.read(path: try file("k", padded))), expected)
    }

    // MARK: Bad contents

    func testTooFewAndTooManyDigits() throws {
        let p63 = try file("k63", String(hex.dropLast()) + "\n")
        XCTAssertEqual(readError(p63), .keyFileDigitCount(path: p63, found: 63, expected: 64))
        let p65 = try file("k65", hex + "a\n")
        XCTAssertEqual(readError(p65), .keyFileDigitCount(path: p65, found: 65, expected: 64))
        XCTAssertTrue(readError(p65)?.description.contains("found 65 hex digits") ?? false)
    }

    func testNonHexCharacterNamesItsOffset() throws {
        var text = Array(("  " + hex).utf8)
        text[12] = UInt8(ascii: "g")
        let p = try file("kg", bytes: text)
        XCTAssertEqual(readError(p), .keyFileBadCharacter(path: p, offset: 12, byte: UInt8(ascii: "g")))
        XCTAssertTrue(readError(p)?.description.contains("'g' at byte offset 12") ?? false)
    }

    func testInteriorSpaceIsABadCharacter() throws {
        let p = try file("ks", String(hex.prefix(32)) + " " + String(hex.suffix(32)))
        XCTAssertEqual(readError(p), .keyFileBadCharacter(path: p, offset: 32, byte: UInt8(ascii: " ")))
    }

    func testEmptyFile() throws {
        let p = try file("empty", "")
        XCTAssertEqual(readError(p), .keyFileDigitCount(path: p, found: 0, expected: 64))
    }

    func testWhitespaceOnlyFile() throws {
        let p = try file("blank", " \n\n")
        XCTAssertEqual(readError(p), .keyFileDigitCount(path: p, found: 0, expected: 64))
    }

    func testTooLarge() throws {
        let p = try file("big", hex + String(repeating: " ", count: KeyFile.maxFileSize + 1 - hex.utf8.count))
        XCTAssertEqual(readError(p), .keyFileTooLarge(path: p, size: 4097, limit: 4096))
    }

    func testAllZeroKey() throws {
        let p = try file("zero", String(repeating: "0", count: 64) + "\n")
        XCTAssertEqual(readError(p), .keyFileAllZero(path: p))
    }

    // MARK: Bad files

    func testGroupOrOtherPermissionsRefused() throws {
        for mode: mode_t in [0o640, 0o604, 0o660, 0o644, 0o601, 0o610] {
            let p = try file("k\(String(mode, radix: 8))", hex, mode: mode)
            XCTAssertEqual(readError(p), .keyFilePermissions(path: p, mode: UInt32(S_IFREG) | UInt32(mode)))
            let octal = "0" + String(mode, radix: 8)
            XCTAssertEqual(readError(p)?.description,
                           "key file '\(p)': permissions \(octal) are too open; run chmod 600 '\(p)'")
        }
    }

    /// Like ssh: a 0600 key owned by another (non-root) user is refused,
    /// since that user can read and rewrite it. Root's and our own are fine.
    func testKeyOwnedByAnotherUserRefused() throws {
        try XCTSkipIf(getuid() != 0, "needs root to chown")
        let p = try file("theirs", hex)
        XCTAssertEqual(chown(p, 65534, 65534), 0)
        XCTAssertEqual(readError(p), .keyFileOwner(path: p, owner: 65534, you: 0))
        XCTAssertEqual(readError(p)?.description,
                       "key file '\(p)': owned by uid 65534, not by root or you (uid 0), so that user can change it; run chown root '\(p)'")
        XCTAssertEqual(chown(p, 0, 0), 0)
        XCTAssertEqual(bytes(try KeyFile.read(path: p)), expected)
        XCTAssertEqual(ConfigError.keyFileOwner(path: "/k", owner: 1001, you: 1000).description,
                       "key file '/k': owned by uid 1001, not by root or you (uid 1000), so that user can change it; run as root: chown 1000 '/k'")
    }

    func testDirectory() throws {
        XCTAssertEqual(readError(dir), .keyFileNotRegular(path: dir, kind: "a directory"))
    }

    func testFIFODoesNotHang() throws {
        let p = dir + "/fifo"
        XCTAssertEqual(mkfifo(p, 0o600), 0)
        XCTAssertEqual(readError(p), .keyFileNotRegular(path: p, kind: "a FIFO"))
    }

    func testMissingFile() {
        let p = dir + "/nothing"
        XCTAssertEqual(readError(p), .keyFileUnreadable(path: p, reason: "No such file or directory"))
    }

    // MARK: genkey's helpers

    func testGenerateEncodeCreateRead() throws {
        let key = try KeyFile.generate()
        let text = KeyFile.encode(key)
        let t = text.withUnsafeBytes { Array($0) }
        XCTAssertEqual(t.count, 65)
        XCTAssertEqual(t.last, UInt8(ascii: "\n"))
        XCTAssertTrue(t.dropLast().allSatisfy { Array("0123456789abcdef".utf8).contains($0) })
        XCTAssertNotEqual(bytes(key), bytes(try KeyFile.generate()))

        // A restrictive umask must not leave the file unreadable: create() fchmods to 0600.
        let old = umask(0o277)
        defer { umask(old) }
        let p = dir + "/new"
        try KeyFile.create(path: p, text: text)
        var st = stat()
        XCTAssertEqual(stat(p, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o600)
        XCTAssertEqual(bytes(try KeyFile.read(path: p)), bytes(key))
    }

    func testCreateRefusesExistingFileAndSymlink() throws {
        let p = try file("existing", "keep me", mode: 0o644)
        XCTAssertThrowsError(try KeyFile.create(path: p, text: KeyFile.encode(try KeyFile.generate()))) {
            XCTAssertEqual($0 as? ConfigError, .keyFileExists(path: p))
        }
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "keep me")
        let link = dir + "/link"
        XCTAssertEqual(symlink(dir + "/target", link), 0)
        XCTAssertThrowsError(try KeyFile.create(path: link, text: KeyFile.encode(try KeyFile.generate())))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/target"))
    }

    func testDecodeDirectly() throws {
        let good = Array(hex.utf8)
        let key = try good.withUnsafeBytes { KeyFile.decode($0, path: "x") }.get()
        XCTAssertEqual(bytes(key), expected)
        let bad: [UInt8] = Array(hex.utf8.dropLast()) + [0x00]
        let result = bad.withUnsafeBytes { KeyFile.decode($0, path: "x") }
        XCTAssertEqual(result.failureError, .keyFileBadCharacter(path: "x", offset: 63, byte: 0))
        XCTAssertTrue(result.failureError?.description.contains("byte 0x00 at byte offset 63") ?? false)
    }
}

private extension Result {
    var failureError: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
