import XCTest
@testable import Shared
import SqutunConfig

final class MTUTests: XCTestCase {
    func testExplicitValues() {
        // 1500 - 28 = 1472-byte datagrams: 76 overhead leaves 1396 = 87 blocks,
        // the last holding 15 payload bytes + 1 padding byte: 87 * 16 - 1.
        XCTAssertEqual(MTU.tunMTU(linkMTU: 1500, underlay: .ipv4), 1391)
        XCTAssertEqual(MTU.tunMTU(linkMTU: 1500, underlay: .ipv6), 1375)
        XCTAssertEqual(MTU.smallestLinkMTU(underlay: .ipv4), 184)
        XCTAssertEqual(MTU.smallestLinkMTU(underlay: .ipv6), 1420)
        XCTAssertEqual(MTU.tunMTU(linkMTU: 184, underlay: .ipv4), 79)
        XCTAssertEqual(MTU.tunMTU(linkMTU: 1420, underlay: .ipv6), 1295)
        // The cap: IPv4 at 65535 would allow exactly the longest sealable payload.
        XCTAssertEqual(MTU.tunMTU(linkMTU: 65535, underlay: .ipv4), Wire.maxPayloadLength)
        XCTAssertEqual(MTU.tunMTU(linkMTU: 65535, underlay: .ipv6), 65407)
    }

    func testBelowSmallestLinkMTUHasNoTunMTU() {
        for underlay in Underlay.allCases {
            let smallest = MTU.smallestLinkMTU(underlay: underlay)
            for link in -1..<smallest where MTU.tunMTU(linkMTU: link, underlay: underlay) != nil {
                XCTFail("\(underlay) link MTU \(link) below \(smallest) gave a tun MTU")
                return
            }
        }
    }

    /// Every link MTU from the smallest valid one to 65535: the tun MTU fits,
    /// and one byte more would not (or it is the payload cap).
    func testEveryLinkMTUGivesTheLargestFittingTunMTU() throws {
        for underlay in Underlay.allCases {
            let u = underlay.headerLength
            let smallest = MTU.smallestLinkMTU(underlay: underlay)
            var failures = 0
            for link in smallest...65535 {
                guard let m = MTU.tunMTU(linkMTU: link, underlay: underlay) else {
                    XCTFail("\(underlay) link \(link): no tun MTU")
                    failures += 1
                    if failures > 5 { return }
                    continue
                }
                // What `squtun -m` accepts for this link MTU, too.
                let accepted = try OptionCheck.linkMTU(String(link), option: "-m", underlay: underlay)
                let fits = u + Wire.packetLength(payload: m) <= link
                let largest = u + Wire.packetLength(payload: m + 1) > link || m == Wire.maxPayloadLength
                if !fits || !largest || m < underlay.minimumMTU || m > Wire.maxPayloadLength || accepted != link {
                    XCTFail("\(underlay) link \(link): tun MTU \(m) fits=\(fits) largest=\(largest)")
                    failures += 1
                    if failures > 5 { return }
                }
            }
        }
    }

    func testLargestPayload() {
        XCTAssertNil(MTU.largestPayload(fittingDatagram: Wire.minPacketLength - 1))
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: Wire.minPacketLength), 15)
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: Wire.minPacketLength + 15), 15)
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: Wire.minPacketLength + 16), 31)
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: 1_000_000), Wire.maxPayloadLength)
    }
}
