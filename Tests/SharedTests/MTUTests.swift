import XCTest
@testable import Shared
import SqutunConfig

final class MTUTests: XCTestCase {
    func testExplicitValues() {
        // 1500 - 28 = 1472-byte datagrams: 80 overhead leaves 1392 = 87 blocks,
        // the last holding 15 payload bytes + 1 padding byte: 87 * 16 - 1.
        XCTAssertEqual(MTU.tunMTU(linkMTU: 1500, underlay: .ipv4), 1391)
        // 1500 - 48 = 1452: 1372 = 85 whole blocks: 85 * 16 - 1.
        XCTAssertEqual(MTU.tunMTU(linkMTU: 1500, underlay: .ipv6), 1359)
        XCTAssertEqual(MTU.smallestLinkMTU(underlay: .ipv4), 188)
        XCTAssertEqual(MTU.smallestLinkMTU(underlay: .ipv6), 1424)
        XCTAssertEqual(MTU.tunMTU(linkMTU: 188, underlay: .ipv4), 79)
        XCTAssertNil(MTU.tunMTU(linkMTU: 187, underlay: .ipv4))
        XCTAssertEqual(MTU.tunMTU(linkMTU: 1424, underlay: .ipv6), 1295)
        XCTAssertNil(MTU.tunMTU(linkMTU: 1423, underlay: .ipv6))
        // The cap: IPv4 at 65535 would allow exactly the longest sealable payload.
        XCTAssertEqual(MTU.tunMTU(linkMTU: 65535, underlay: .ipv4), Wire.maxPayloadLength)
        XCTAssertEqual(MTU.tunMTU(linkMTU: 65535, underlay: .ipv6), 65391)
    }

    /// The AEAD suites: 48 bytes whatever the payload (header 32 + tag 16).
    func testExplicitValuesAEAD() {
        for suite in [SuiteID.aes256GCM, .chacha20Poly1305] {
            XCTAssertEqual(MTU.tunMTU(linkMTU: 1500, underlay: .ipv4, suite: suite), 1424, suite.name)
            XCTAssertEqual(MTU.tunMTU(linkMTU: 1500, underlay: .ipv6, suite: suite), 1404, suite.name)
            XCTAssertEqual(MTU.smallestLinkMTU(underlay: .ipv4, suite: suite), 144, suite.name)
            XCTAssertEqual(MTU.smallestLinkMTU(underlay: .ipv6, suite: suite), 1376, suite.name)
            XCTAssertEqual(MTU.tunMTU(linkMTU: 144, underlay: .ipv4, suite: suite), 68, suite.name)
            XCTAssertNil(MTU.tunMTU(linkMTU: 143, underlay: .ipv4, suite: suite), suite.name)
            XCTAssertEqual(MTU.tunMTU(linkMTU: 1376, underlay: .ipv6, suite: suite), 1280, suite.name)
            XCTAssertNil(MTU.tunMTU(linkMTU: 1375, underlay: .ipv6, suite: suite), suite.name)
            XCTAssertEqual(MTU.tunMTU(linkMTU: 65535, underlay: .ipv4, suite: suite), 65459, suite.name)
            XCTAssertEqual(MTU.tunMTU(linkMTU: 65535, underlay: .ipv6, suite: suite), 65439, suite.name)
        }
        XCTAssertEqual(MTU.tunMTU(linkMTU: 1500, underlay: .ipv4, suite: .aes256CBCHMACSHA256), 1391)
    }

    func testBelowSmallestLinkMTUHasNoTunMTU() {
        for suite in SuiteID.allCases {
            for underlay in Underlay.allCases {
                let smallest = MTU.smallestLinkMTU(underlay: underlay, suite: suite)
                for link in -1..<smallest where MTU.tunMTU(linkMTU: link, underlay: underlay, suite: suite) != nil {
                    XCTFail("\(suite.name) \(underlay) link MTU \(link) below \(smallest) gave a tun MTU")
                    return
                }
            }
        }
    }

    /// Every link MTU from the smallest valid one to 65535, every suite:
    /// the tun MTU fits, and one byte more would not (or it is the payload cap).
    func testEveryLinkMTUGivesTheLargestFittingTunMTU() throws {
        for suite in SuiteID.allCases {
            let layout = suite.layout
            for underlay in Underlay.allCases {
                let u = underlay.headerLength
                let smallest = MTU.smallestLinkMTU(underlay: underlay, suite: suite)
                var failures = 0
                for link in smallest...65535 {
                    guard let m = MTU.tunMTU(linkMTU: link, underlay: underlay, suite: suite) else {
                        XCTFail("\(suite.name) \(underlay) link \(link): no tun MTU")
                        failures += 1
                        if failures > 5 { return }
                        continue
                    }
                    // What `squtun -m` accepts for this link MTU, too.
                    let accepted = try OptionCheck.linkMTU(String(link), option: "-m", underlay: underlay, suite: suite)
                    let fits = u + layout.packetLength(payload: m) <= link
                    let largest = u + layout.packetLength(payload: m + 1) > link || m == layout.maxPayloadLength
                    if !fits || !largest || m < underlay.minimumMTU || m > layout.maxPayloadLength || accepted != link {
                        XCTFail("\(suite.name) \(underlay) link \(link): tun MTU \(m) fits=\(fits) largest=\(largest)")
                        failures += 1
                        if failures > 5 { return }
                    }
                }
                XCTAssertThrowsError(try OptionCheck.linkMTU(String(smallest - 1), option: "-m", underlay: underlay,
                                                              suite: suite))
            }
        }
    }

    func testLargestPayload() {
        XCTAssertNil(MTU.largestPayload(fittingDatagram: Wire.minPacketLength - 1))
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: Wire.minPacketLength), 15)
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: Wire.minPacketLength + 15), 15)
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: Wire.minPacketLength + 16), 31)
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: 1_000_000), Wire.maxPayloadLength)
        XCTAssertNil(MTU.largestPayload(fittingDatagram: 47, suite: .aes256GCM))
        XCTAssertEqual(MTU.largestPayload(fittingDatagram: 48, suite: .chacha20Poly1305), 0)
    }
}
