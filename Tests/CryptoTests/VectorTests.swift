import Foundation
import XCTest
import Shared
@testable import squtun_crypto

/// Checks the Swift implementation against exactly the test vectors printed
/// in docs/PROTOCOL.md (made by an independent Python implementation).
final class VectorTests: XCTestCase {
    struct Block {
        var fields: [String: String] = [:]
        var steps: [(from: String, packet: [UInt8], expect: String)] = []
        var name: String { fields["name"] ?? "?" }
    }

    static func loadBlocks() throws -> [Block] {
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        var blocks: [Block] = []
        var cur: Block?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "```vector" { cur = Block(); continue }
            guard var b = cur else { continue }
            if line == "```" { blocks.append(b); cur = nil; continue }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "recv":
                let parts = value.split(separator: " ", maxSplits: 1).map(String.init)
                b.steps.append((parts[0], hex(parts.count > 1 ? parts[1] : ""), ""))
            case "expect":
                b.steps[b.steps.count - 1].expect = value
            default:
                b.fields[key] = value
            }
            cur = b
        }
        return blocks
    }

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = s.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
        return out
    }

    static func hexString(_ b: some Sequence<UInt8>) -> String { b.map { String(format: "%02x", $0) }.joined() }

    func psk(_ block: Block) -> SecretBytes {
        Self.hex(block.fields["psk"]!).withUnsafeBytes { SecretBytes(copying: $0) }
    }

    func testVectorsArePresent() throws {
        let blocks = try Self.loadBlocks()
        XCTAssertGreaterThanOrEqual(blocks.count, 27)
        XCTAssertEqual(blocks.filter { $0.name.hasPrefix("seal-") }.count, 2)
        // Every drop reason of the protocol has a vector.
        let reasons = Set(blocks.flatMap { $0.steps.map(\.expect) }.filter { $0.hasPrefix("drop ") })
        for r in DropReason.allCases {
            XCTAssertTrue(reasons.contains("drop \(r.name)"), "no vector for \(r.name)")
        }
    }

    func testSealVectors() throws {
        let alg = try CryptoAlgorithms()
        for b in try Self.loadBlocks() where b.name.hasPrefix("seal-") {
            let f = b.fields
            let session = UInt64(f["session"]!)!
            let keys = try SessionKeys(algorithms: alg, psk: psk(b), session: session)
            keys.enc.withUnsafeBytes { XCTAssertEqual(Self.hexString($0), f["k_enc"], b.name) }
            keys.mac.withUnsafeBytes { XCTAssertEqual(Self.hexString($0), f["k_mac"], b.name) }
            keys.iv.withUnsafeBytes { XCTAssertEqual(Self.hexString($0), f["k_iv"], b.name) }
            let cipher = try PacketCipher(algorithms: alg)
            try cipher.setKeys(keys)
            let payload = Self.hex(f["payload"]!)
            let header = Header(type: f["type"] == "data" ? .data : .keepalive, session: session,
                                counter: UInt64(f["counter"]!)!, timestampMs: UInt64(f["timestamp_ms"]!)!)
            var buf = [UInt8](repeating: 0, count: 2048)
            let n = try buf.withUnsafeMutableBytes { p in
                p.baseAddress!.advanced(by: Wire.offsetCiphertext).copyMemory(from: payload, byteCount: payload.count)
                return try cipher.seal(header: header, payloadLength: payload.count, packet: p)
            }
            XCTAssertEqual(Self.hexString(buf[Wire.offsetIV..<Wire.offsetCiphertext]), f["iv"], b.name)
            XCTAssertEqual(Self.hexString(buf[0..<n]), f["packet"], b.name)
        }
    }

    func testReceiveVectors() throws {
        let alg = try CryptoAlgorithms()
        var checked = 0
        for b in try Self.loadBlocks() where !b.name.hasPrefix("seal-") {
            let f = b.fields
            let opener = try Opener(algorithms: alg, psk: psk(b), ownSession: UInt64(f["own_session"]!)!,
                                    startMs: UInt64(f["start_ms"]!)!,
                                    formerSessions: (f["former_sessions"] ?? "").split(separator: " ").map { UInt64($0)! },
                                    skewSeconds: Int(f["skew_s"]!)!)
            let now = UInt64(f["now_ms"]!)!
            XCTAssertFalse(b.steps.isEmpty, b.name)
            for (i, step) in b.steps.enumerated() {
                var pkt = step.packet
                let got: String = pkt.withUnsafeMutableBytes { p in
                    switch opener.open(p, fromPeer: step.from == "peer", nowMs: now) {
                    case .data(let length):
                        return "data " + Self.hexString(p[Wire.offsetCiphertext..<(Wire.offsetCiphertext + length)])
                    case .keepalive: return "keepalive"
                    case .drop(let r): return "drop \(r.name)"
                    }
                }
                XCTAssertEqual(got, step.expect, "\(b.name) step \(i + 1)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 30)
    }
}
