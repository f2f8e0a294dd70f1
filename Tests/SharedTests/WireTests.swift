import XCTest
@testable import Shared

final class WireTests: XCTestCase {
    func testOverheadConstants() {
        XCTAssertEqual(Wire.fixedOverhead, 76)
        XCTAssertEqual(Wire.minPacketLength, 92)
        XCTAssertEqual(Wire.packetLength(payload: 0), 92)
        XCTAssertEqual(Wire.packetLength(payload: 15), 92)
        XCTAssertEqual(Wire.packetLength(payload: 16), 108)
        XCTAssertLessThanOrEqual(Wire.packetLength(payload: Wire.maxPayloadLength), 65507)
        XCTAssertGreaterThan(Wire.packetLength(payload: Wire.maxPayloadLength + 1), 65507)
    }
}
