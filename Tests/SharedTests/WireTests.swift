import XCTest
@testable import Shared

final class WireTests: XCTestCase {
    func testOverheadConstants() {
        XCTAssertEqual(Wire.headerLength, 32)
        XCTAssertEqual(Wire.fixedOverhead, 80)
        XCTAssertEqual(Wire.minPacketLength, 96)
        XCTAssertEqual(Wire.packetLength(payload: 0), 96)
        XCTAssertEqual(Wire.packetLength(payload: 15), 96)
        XCTAssertEqual(Wire.packetLength(payload: 16), 112)
        XCTAssertLessThanOrEqual(Wire.packetLength(payload: Wire.maxPayloadLength), 65507)
        XCTAssertGreaterThan(Wire.packetLength(payload: Wire.maxPayloadLength + 1), 65507)
    }
}
