import Foundation
import XCTest
import Shared
@testable import squtun_crypto

/// TEMPORARY, with Tests/fixtures/v2-vectors-temporary.md: writes v2 vector
/// blocks from this Swift code (so they are NOT independent) to exercise
/// VectorTests' parser until docs/PROTOCOL.md carries the v2 vectors of the
/// independent Python implementation; delete both then. Writes only with
/// SQUTUN_WRITE_V2_FIXTURE=1; otherwise checks the file is what it writes.
final class VectorFixtureWriter: XCTestCase {
    static let psk = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
    static let wrongPSK = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    static let sessionA: UInt64 = 1_795_000_000_000_000_000
    static let sessionB: UInt64 = 1_795_000_000_500_000_000
    static let startMs: UInt64 = 1_795_000_000_600
    static let nowMs: UInt64 = 1_795_000_001_000
    static let icmp = "45000024a1b24000400185120a0900010a090002080078880001000173717574756e2121"

    func testFixtureIsWhatTheWriterMakes() throws {
        let text = try Self.document()
        let url = VectorTests.temporaryFixture
        if ProcessInfo.processInfo.environment["SQUTUN_WRITE_V2_FIXTURE"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), text)
    }

    static func secret(_ hex: String) -> SecretBytes { VectorTests.hex(hex).withUnsafeBytes { SecretBytes(copying: $0) } }

    static func seal<C: SuiteCipher>(_: C.Type, psk: String = psk, session: UInt64 = sessionA, counter: UInt64,
                                     type: PacketType, timestamp: UInt64, payload: String) throws -> [UInt8] {
        let c = try C(algorithms: CryptoAlgorithms())
        try SessionKeyDeriver(psk: secret(psk)).setKeys(of: session, in: c)
        let p = VectorTests.hex(payload)
        var buf = [UInt8](repeating: 0, count: C.Suite.packetLength(payload: p.count))
        _ = try buf.withUnsafeMutableBytes { b in
            b.baseAddress!.advanced(by: C.Suite.payloadStart).copyMemory(from: p, byteCount: p.count)
            return try c.seal(header: Header(type: type, session: session, counter: counter, timestampMs: timestamp),
                              payloadLength: p.count, packet: b)
        }
        return buf
    }

    static func hex(_ b: [UInt8]) -> String { VectorTests.hexString(b) }

    static func document() throws -> String {
        var out = "# TEMPORARY v2 vectors made by the Swift code itself (VectorFixtureWriter.swift), only to\n"
            + "# exercise VectorTests' parser; the independent ones belong in docs/PROTOCOL.md.\n\n"
        out += try suiteBlocks(PacketCipher.self, other: AES256GCMCipher.self)
        out += try suiteBlocks(AES256GCMCipher.self, other: ChaCha20Poly1305Cipher.self)
        out += try suiteBlocks(ChaCha20Poly1305Cipher.self, other: PacketCipher.self)
        return out
    }

    static func suiteBlocks<C: SuiteCipher, O: SuiteCipher>(_ c: C.Type, other: O.Type) throws -> String {
        let suite = SuiteID(rawValue: C.Suite.id)!
        var out = ""
        func block(_ lines: [String]) { out += "```vector\n" + lines.joined(separator: "\n") + "\n```\n\n" }
        let deriver = try SessionKeyDeriver(psk: secret(psk))
        var okm = [UInt8](repeating: 0, count: C.Suite.keyMaterialLength)
        _ = okm.withUnsafeMutableBytes { deriver.derive(session: sessionA, suite: suite, into: $0) }
        let data = try seal(c, counter: 0, type: .data, timestamp: 1_795_000_000_980, payload: icmp)
        let keepalive = try seal(c, counter: 1, type: .keepalive, timestamp: 1_795_000_000_990, payload: "")
        for (name, counter, type, ts, payload, packet) in [("data", UInt64(0), "data", 1_795_000_000_980, icmp, data),
                                                           ("keepalive", 1, "keepalive", 1_795_000_000_990, "", keepalive)] {
            var lines = ["name: seal-\(name)-\(suite.name)", "suite: \(suite.name)", "psk: \(psk)", "type: \(type)",
                         "session: \(sessionA)", "counter: \(counter)", "timestamp_ms: \(ts)", "payload: \(payload)"]
            if C.Suite.id == 1 {
                lines += ["k_enc: \(hex(Array(okm[0..<32])))", "k_mac: \(hex(Array(okm[32..<64])))",
                          "k_iv: \(hex(Array(okm[64..<96])))", "iv: \(hex(Array(packet[32..<48])))"]
            } else {
                var nonce = Array(okm[32..<44])
                for i in 0..<8 { nonce[4 + i] ^= UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64(i))) }
                lines += ["key: \(hex(Array(okm[0..<32])))", "nonce_salt: \(hex(Array(okm[32..<44])))",
                          "nonce: \(hex(nonce))"]
            }
            block(lines + ["packet: \(hex(packet))"])
        }
        let receiver = ["suite: \(suite.name)", "psk: \(psk)", "own_session: \(sessionB)", "start_ms: \(startMs)",
                        "now_ms: \(nowMs)", "skew_s: 30"]
        func steps(_ name: String, _ s: [(String, [UInt8], String)]) {
            block(["name: \(name)-\(suite.name)"] + receiver
                  + s.flatMap { ["recv: \($0.0) \(hex($0.1))", "expect: \($0.2)"] })
        }
        func with(_ p: [UInt8], _ i: Int, _ v: UInt8) -> [UInt8] { var q = p; q[i] = v; return q }
        steps("accept-data-then-keepalive", [("peer", data, "data \(icmp)"), ("peer", keepalive, "keepalive")])
        steps("reject-replay", [("peer", data, "data \(icmp)"), ("peer", data, "drop replay")])
        steps("reject-truncated", [("peer", Array(data.dropLast()), C.Suite.id == 1 ? "drop malformed" : "drop bad-mac")])
        steps("reject-too-short", [("peer", Array(data[0..<31]), "drop malformed")])
        steps("reject-old-version", [("peer", with(data, 0, 1), "drop old-version")])
        steps("reject-unknown-version", [("peer", with(data, 0, 3), "drop malformed")])
        let otherSuite = try seal(other, counter: 0, type: .data, timestamp: 1_795_000_000_980, payload: icmp)
        steps("reject-wrong-suite", [("peer", otherSuite, "drop wrong-suite"), ("peer", with(data, 1, 9), "drop wrong-suite")])
        steps("reject-unknown-type", [("peer", with(data, 2, 3), "drop malformed")])
        steps("reject-wrong-mode", [("peer", with(data, 3, 1), "drop wrong-mode")])
        steps("reject-unknown-flags", [("peer", with(data, 3, 2), "drop malformed")])
        steps("reject-unknown-key", [("peer", with(data, 7, 1), "drop unknown-key")])
        steps("reject-tampered-header", [("peer", with(data, 31, data[31] ^ 1), "drop bad-mac")])
        steps("reject-tampered-tag", [("peer", with(data, data.count - 1, data[data.count - 1] ^ 0x80), "drop bad-mac")])
        let wrong = try seal(c, psk: wrongPSK, counter: 0, type: .data, timestamp: 1_795_000_000_980, payload: icmp)
        steps("reject-wrong-key", [("peer", wrong, "drop bad-mac")])
        steps("reject-wrong-key-unknown-sender", [("other", wrong, "drop unknown-sender")])
        let reflected = try seal(c, session: sessionB, counter: 0, type: .data, timestamp: 1_795_000_000_980, payload: icmp)
        steps("reject-reflected", [("peer", reflected, "drop reflected")])
        let older = try seal(c, session: sessionA - 1, counter: 0, type: .data, timestamp: 1_795_000_000_980, payload: icmp)
        steps("reject-old-session", [("peer", data, "data \(icmp)"), ("peer", older, "drop old-session")])
        let skewed = try seal(c, counter: 0, type: .data, timestamp: nowMs + 30_001, payload: icmp)
        steps("reject-time-skew-future", [("peer", skewed, "drop time-skew")])
        return out
    }
}
