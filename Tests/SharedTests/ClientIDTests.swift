import Shared
import XCTest

/// The identifier rule of server mode: what a client's file may be called
/// and what `--id` takes.
final class ClientIDTests: XCTestCase {
    func testValidNames() {
        for name in ["a", "A", "0", "alice", "laptop-01.example", "x_y", "9lives", "a.", "a-",
                     String(repeating: "z", count: 32), "office_router.42-abcdefghijklmno"] {
            XCTAssertTrue(ClientID.isValid(name), name)
            XCTAssertNil(ClientID.problem(name), name)
        }
    }

    func testEachBrokenRuleNamed() {
        let cases: [(String, String)] = [
            ("", "empty identifier"),
            (String(repeating: "z", count: 33), "identifier longer than 32 bytes"),
            (".hidden", "identifier must start with a letter or a digit"),
            ("-x", "identifier must start with a letter or a digit"),
            ("_x", "identifier must start with a letter or a digit"),
            (".", "identifier must start with a letter or a digit"),
            ("..", "identifier must start with a letter or a digit"),
            ("a/b", "identifier may only use A-Z a-z 0-9 . _ -"),
            ("a b", "identifier may only use A-Z a-z 0-9 . _ -"),
            ("a\nb", "identifier may only use A-Z a-z 0-9 . _ -"),
            ("alice~", "identifier may only use A-Z a-z 0-9 . _ -"),
            ("ålice", "identifier must start with a letter or a digit"),
            ("bjørn", "identifier may only use A-Z a-z 0-9 . _ -"),
        ]
        for (name, problem) in cases {
            XCTAssertFalse(ClientID.isValid(name), name.debugDescription)
            XCTAssertEqual(ClientID.problem(name), problem, name.debugDescription)
        }
    }

    /// The limit is bytes, not characters: 16 two-byte characters are 32 bytes.
    func testLengthCountsBytes() {
        XCTAssertEqual(ClientID.problem(String(repeating: "é", count: 17)), "identifier longer than 32 bytes")
        XCTAssertTrue(ClientID.isValid(String(repeating: "a1", count: 16)))
    }
}
