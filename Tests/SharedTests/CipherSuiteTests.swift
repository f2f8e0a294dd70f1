import XCTest
@testable import Shared

/// The version 1 suite's layout against PROTOCOL.md's figures, written out
/// here independently of the suite's own formulas.
final class CipherSuiteTests: XCTestCase {
    typealias V1 = CBCHMACSHA256Suite

    func testFigures() {
        XCTAssertTrue(Wire.Suite.self == V1.self)
        XCTAssertEqual(V1.version, 1)
        XCTAssertEqual(V1.payloadStart, 44)  // header 28 + IV 16
        XCTAssertEqual(V1.trailerLength, 32)  // HMAC-SHA256
        XCTAssertEqual(V1.headroom, 16)  // the IV, free once decrypted
        XCTAssertEqual(V1.minPacketLength, 92)
        XCTAssertEqual(V1.maxPayloadLength, 65423)
        XCTAssertLessThanOrEqual(V1.packetLength(payload: V1.maxPayloadLength), 65507)
    }

    func testLengthsArePKCS7Blocks() {
        for p in Array(0...1100) + [65_000, 65_423] {
            let padded = (p / 16 + 1) * 16
            XCTAssertEqual(V1.sealedPayloadLength(p), padded, "payload \(p)")
            XCTAssertEqual(V1.packetLength(payload: p), 28 + 16 + padded + 32, "payload \(p)")
        }
        for n in 0...2000 {
            XCTAssertEqual(V1.isWellFormedLength(n), n >= 92 && (n - 76) % 16 == 0, "length \(n)")
        }
    }

    func testLargestPayloadIsTheLargestThatFits() {
        XCTAssertNil(V1.largestPayload(fittingDatagram: 91))
        for d in 92...3000 {
            guard let p = V1.largestPayload(fittingDatagram: d) else { return XCTFail("\(d)") }
            XCTAssertLessThanOrEqual(V1.packetLength(payload: p), d, "datagram \(d)")
            XCTAssertGreaterThan(V1.packetLength(payload: p + 1), d, "datagram \(d)")
        }
    }
}
