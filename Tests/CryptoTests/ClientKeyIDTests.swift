import Shared
import XCTest
@testable import squtun_crypto

/// Client key ids (PROTOCOL.md, "Server mode: key ids"): the values below
/// are the document's vectors (VectorTests checks the document's blocks
/// themselves), computed independently with Python's hashlib:
///
///     d = hashlib.sha256(b"squtun v2 key id" + name.encode()).digest()
///     key_id = int.from_bytes(d[:4], "big") or 1
final class ClientKeyIDTests: XCTestCase {
    static let vectors: [(name: String, keyId: UInt32)] = [
        ("alice", 0x44c3_77d9),
        ("bob", 0xa954_024a),
        ("laptop-01.example", 0x37f4_0f04),
        ("office_router.42-abcdefghijklmno", 0x4cb3_0b0f),
        // Two identifiers with one key id (found by a birthday search):
        // the peers directory scan refuses the second.
        ("client-29758", 0x3294_eb25),
        ("client-72069", 0x3294_eb25),
    ]

    func testVectors() {
        for v in Self.vectors {
            XCTAssertEqual(ClientKeyID.keyId(for: v.name), v.keyId, v.name)
        }
    }

    /// The digest is SHA-256 of the label and the name, nothing between them.
    func testDigestOfLabelAndName() {
        XCTAssertEqual(CT.hex(ClientKeyID.sha256(Array("squtun v2 key idalice".utf8))),
                       "44c377d9ce0e3c4e105e2af34552ce04aab328d1b044e68135b40e7cb1c08002")
        // FIPS 180-2's "abc": the SHA-256 itself, not only its use.
        XCTAssertEqual(CT.hex(ClientKeyID.sha256(Array("abc".utf8))),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    /// 0 is the point-to-point key id: a digest starting with four zero
    /// bytes gives 1; every other prefix is the number itself, big-endian.
    func testZeroPrefixIsOne() {
        XCTAssertEqual(ClientKeyID.fromDigestPrefix([0, 0, 0, 0] + [UInt8](repeating: 0xff, count: 28)), 1)
        XCTAssertEqual(ClientKeyID.fromDigestPrefix([0, 0, 0, 1] + [UInt8](repeating: 0, count: 28)), 1)
        XCTAssertEqual(ClientKeyID.fromDigestPrefix([0, 0, 0, 2] + [UInt8](repeating: 0, count: 28)), 2)
        XCTAssertEqual(ClientKeyID.fromDigestPrefix([0x80, 0, 0, 0] + [UInt8](repeating: 0, count: 28)), 0x8000_0000)
        XCTAssertEqual(ClientKeyID.fromDigestPrefix([0x12, 0x34, 0x56, 0x78] + [UInt8](repeating: 0, count: 28)),
                       0x1234_5678)
    }

    /// Names differing in case, or by a trailing byte, are different clients.
    func testCaseAndLengthMatter() {
        XCTAssertNotEqual(ClientKeyID.keyId(for: "alice"), ClientKeyID.keyId(for: "Alice"))
        XCTAssertNotEqual(ClientKeyID.keyId(for: "alice"), ClientKeyID.keyId(for: "alice."))
        XCTAssertNotEqual(ClientKeyID.keyId(for: "alice"), 0)
    }
}
