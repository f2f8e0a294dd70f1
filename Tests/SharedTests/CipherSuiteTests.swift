import XCTest
@testable import Shared

/// Each suite's layout against PROTOCOL.md's figures, written out here
/// independently of the suites' own formulas.
final class CipherSuiteTests: XCTestCase {
    typealias CBC = CBCHMACSHA256Suite

    func testFigures() {
        XCTAssertTrue(Wire.Suite.self == CBC.self)
        XCTAssertEqual(CBC.id, 1)
        XCTAssertEqual(CBC.payloadStart, 48)  // header 32 + IV 16
        XCTAssertEqual(CBC.trailerLength, 32)  // HMAC-SHA256
        XCTAssertEqual(CBC.headroom, 16)  // the IV, free once decrypted
        XCTAssertEqual(CBC.minPacketLength, 96)
        XCTAssertEqual(CBC.maxPayloadLength, 65423)
        XCTAssertEqual(CBC.keyMaterialLength, 96)
        XCTAssertLessThanOrEqual(CBC.packetLength(payload: CBC.maxPayloadLength), 65507)
        XCTAssertGreaterThan(CBC.packetLength(payload: CBC.maxPayloadLength + 1), 65507)
    }

    func testAEADFigures() {
        XCTAssertEqual(AES256GCMSuite.id, 2)
        XCTAssertEqual(ChaCha20Poly1305Suite.id, 3)
        for s in [AES256GCMSuite.self, ChaCha20Poly1305Suite.self] as [any AEADSuite.Type] {
            XCTAssertEqual(s.payloadStart, 32)  // right behind the header
            XCTAssertEqual(s.trailerLength, 16)  // the tag
            XCTAssertEqual(s.headroom, 32)  // the header, free once the tag verified
            XCTAssertEqual(s.minPacketLength, 48)
            XCTAssertEqual(s.maxPayloadLength, 65507 - 48)
            XCTAssertEqual(s.keyMaterialLength, 44)  // K 32 + N_salt 12
            for p in [0, 1, 15, 16, 1000, 65_459] { XCTAssertEqual(s.packetLength(payload: p), 48 + p) }
            for n in 0...200 { XCTAssertEqual(s.isWellFormedLength(n), n >= 48, "length \(n)") }
            XCTAssertNil(s.largestPayload(fittingDatagram: 47))
            XCTAssertEqual(s.largestPayload(fittingDatagram: 48), 0)
            XCTAssertEqual(s.largestPayload(fittingDatagram: 1472), 1424)
            XCTAssertEqual(s.largestPayload(fittingDatagram: 70_000), 65459)
        }
    }

    func testSuiteNamesAndBytes() {
        XCTAssertEqual(SuiteID.names, ["aes-256-cbc-hmac-sha256", "aes-256-gcm", "chacha20-poly1305"])
        XCTAssertEqual(SuiteID.defaultSuite, .aes256CBCHMACSHA256)
        for s in SuiteID.allCases {
            XCTAssertEqual(SuiteID(name: s.name), s)
            XCTAssertEqual(s.layout.id, s.rawValue)
            XCTAssertEqual(SuiteID.describe(s.rawValue), s.name)
        }
        XCTAssertNil(SuiteID(name: "AES-256-GCM"))
        XCTAssertNil(SuiteID(name: "aes-256-cbc"))
        XCTAssertEqual(SuiteID.describe(9), "unknown suite 9")
        XCTAssertEqual(SuiteID.describe(0), "unknown suite 0")
    }

    func testLengthsArePKCS7Blocks() {
        for p in Array(0...1100) + [65_000, 65_423] {
            let padded = (p / 16 + 1) * 16
            XCTAssertEqual(CBC.sealedPayloadLength(p), padded, "payload \(p)")
            XCTAssertEqual(CBC.packetLength(payload: p), 32 + 16 + padded + 32, "payload \(p)")
        }
        for n in 0...2000 {
            XCTAssertEqual(CBC.isWellFormedLength(n), n >= 96 && (n - 80) % 16 == 0, "length \(n)")
        }
    }

    func testLargestPayloadIsTheLargestThatFits() {
        XCTAssertNil(CBC.largestPayload(fittingDatagram: 95))
        for d in 96...3000 {
            guard let p = CBC.largestPayload(fittingDatagram: d) else { return XCTFail("\(d)") }
            XCTAssertLessThanOrEqual(CBC.packetLength(payload: p), d, "datagram \(d)")
            XCTAssertGreaterThan(CBC.packetLength(payload: p + 1), d, "datagram \(d)")
        }
    }
}
