import XCTest
import CShim
@testable import SqutunSystem
@testable import SqutunDataPath
@testable import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

/// User lookup and chroot checks run here; the drop itself runs only in a
/// spawned child (ChildEntry "drop"), never in the test process.
final class PrivilegesTests: XCTestCase {
    private var directories: [String] = []

    override func tearDown() {
        directories.forEach { TestSupport.removeTree($0) }
        directories = []
        super.tearDown()
    }

    private func directory(mode: mode_t = 0o755, owner: uid_t = 0) throws -> String {
        let dir = TestSupport.makeTemporaryDirectory()
        directories.append(dir)
        XCTAssertEqual(chmod(dir, mode), 0)
        if owner != 0 { XCTAssertEqual(chown(dir, owner, 0), 0) }
        return dir
    }

    func testLookupUser() throws {
        let root = try Privileges.lookupUser("root")
        XCTAssertEqual(root.uid, 0)
        XCTAssertEqual(root.gid, 0)
        let nobody = try Privileges.lookupUser("nobody")
        XCTAssertEqual(nobody.uid, 65534)
    }

    func testLookupMissingUser() {
        XCTAssertThrowsError(try Privileges.lookupUser("sqt-no-such-user")) { error in
            XCTAssertEqual(error as? SystemError, .userMissing(name: "sqt-no-such-user"))
            XCTAssertEqual("\(error)", "user 'sqt-no-such-user' does not exist; create it with: adduser --system --group --no-create-home sqt-no-such-user")
        }
    }

    func testGoodChrootDirectory() throws {
        XCTAssertNoThrow(try Privileges.checkChrootDirectory(try directory()))
        XCTAssertNoThrow(try Privileges.checkChrootDirectory(try directory(mode: 0o711)))
    }

    func testChrootDirectoryFaults() throws {
        try XCTSkipIf(geteuid() != 0, "needs root to make root-owned directories")
        let missing = try directory() + "/missing"
        XCTAssertThrowsError(try Privileges.checkChrootDirectory(missing)) { error in
            XCTAssertEqual(error as? SystemError, .chrootMissing(path: missing))
            XCTAssertEqual("\(error)", "chroot directory \(missing) does not exist; create it with: mkdir -p \(missing) && chmod 755 \(missing)")
        }
        let file = try directory() + "/file"
        XCTAssertNotEqual(creat(file, 0o644), -1)
        XCTAssertThrowsError(try Privileges.checkChrootDirectory(file)) { error in
            XCTAssertEqual(error as? SystemError, .chrootNotDirectory(path: file))
        }
        let foreign = try directory(owner: 1234)
        XCTAssertThrowsError(try Privileges.checkChrootDirectory(foreign)) { error in
            XCTAssertEqual(error as? SystemError, .chrootNotRootOwned(path: foreign, uid: 1234))
            XCTAssertTrue("\(error)".hasSuffix("fix it with: chown root:root \(foreign)"))
        }
        for mode: mode_t in [0o775, 0o757, 0o777] {
            let writable = try directory(mode: mode)
            XCTAssertThrowsError(try Privileges.checkChrootDirectory(writable)) { error in
                XCTAssertEqual(error as? SystemError, .chrootWritable(path: writable, mode: UInt32(S_IFDIR) | UInt32(mode)))
                XCTAssertTrue("\(error)".contains("has mode 0\(String(mode, radix: 8)) and is writable by group or others; fix it with: chmod 755 \(writable)"), "\(error)")
            }
        }
        for entry in ["file", ".hidden"] {
            let full = try directory()
            XCTAssertNotEqual(creat(full + "/" + entry, 0o600), -1)
            XCTAssertThrowsError(try Privileges.checkChrootDirectory(full)) { error in
                XCTAssertEqual(error as? SystemError, .chrootNotEmpty(path: full, entry: entry))
            }
        }
    }

    func testRootTargetIsRefusedBeforeAnythingChanges() throws {
        let dir = try directory()
        for (uid, gid): (UInt32, UInt32) in [(0, 65534), (65534, 0)] {
            XCTAssertThrowsError(try Privileges.dropPrivileges(chroot: dir, uid: uid, gid: gid)) { error in
                XCTAssertEqual(error as? SystemError, .targetIsRoot(uid: uid, gid: gid))
            }
        }
        // Still the same process: not chrooted, same ids.
        XCTAssertEqual(access("/etc/passwd", F_OK), 0)
    }

    func testUnprivilegedHardeningRefusesRoot() throws {
        try XCTSkipIf(geteuid() != 0, "checks the root refusal")
        XCTAssertThrowsError(try Privileges.unprivilegedHardening()) { error in
            XCTAssertEqual(error as? SystemError, .stillRoot)
        }
    }

    func testVerifyFailsForRoot() throws {
        try XCTSkipIf(geteuid() != 0, "the test process is the root case")
        XCTAssertThrowsError(try Privileges.verifyDropped(uid: 65534, gid: 65534)) { error in
            guard case .dropNotVerified(let check) = error as? SystemError else { return XCTFail("\(error)") }
            XCTAssertTrue(check.hasPrefix("user ids are 0/0/0"), check)
        }
    }

    /// The real drop, in a spawned child: chroot + setuid + verification + no_new_privs.
    func testDropPrivilegesInChild() throws {
        try XCTSkipIf(geteuid() != 0, "needs root")
        let dir = try directory()
        let result = ChildProcess.run("drop", environment: ["SQUTUN_TEST_CHROOT=\(dir)"])
        XCTAssertEqual(result.status, .exited(0), result.output)
    }
}
