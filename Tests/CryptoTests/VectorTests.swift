import Foundation
import XCTest
import Shared
@testable import squtun_crypto

/// Checks the Swift implementation against exactly the test vectors printed
/// in docs/PROTOCOL.md (made by an independent Python implementation).
///
/// v2 blocks: every block names its `suite:`. A `seal-…` block of the CBC
/// suite gives k_enc/k_mac/k_iv/iv, of an AEAD suite key/nonce_salt/nonce,
/// and the exact `packet`. A `keypair-…` block gives X25519 inputs and the
/// tunnel key T, derived from both sides. A `keyid-…` block gives a
/// client identifier (`id`), its `key_id`, and for some the SHA-256 it
/// comes from (`sha256`). Every
/// other block is a receive sequence for a fresh opener of its suite.
final class VectorTests: XCTestCase {
    struct Block {
        var fields: [String: String] = [:]
        var steps: [(from: String, packet: [UInt8], expect: String)] = []
        var name: String { fields["name"] ?? "?" }
        var suite: SuiteID? { fields["suite"].flatMap(SuiteID.init(name:)) }
        var isSeal: Bool { name.hasPrefix("seal-") }
        var isKeypair: Bool { name.hasPrefix("keypair-") }
        var isKeyId: Bool { name.hasPrefix("keyid-") }
    }

    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The document of record.
    static let protocolDocument = root.appendingPathComponent("docs/PROTOCOL.md")

    static func loadBlocks(_ url: URL) throws -> [Block] {
        try parse(String(contentsOf: url, encoding: .utf8))
    }

    static func parse(_ text: String) -> [Block] {
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

    /// PROTOCOL.md's blocks; every one but the keypair blocks names a suite.
    func documentBlocks() throws -> [Block] {
        let blocks = try Self.loadBlocks(Self.protocolDocument)
        XCTAssertTrue(blocks.contains { $0.fields["suite"] != nil }, "docs/PROTOCOL.md has no v2 vectors")
        return blocks
    }

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = s.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
        return out
    }

    static func hexString(_ b: some Sequence<UInt8>) -> String { b.map { String(format: "%02x", $0) }.joined() }

    static func psk(_ block: Block) -> SecretBytes {
        hex(block.fields["psk"]!).withUnsafeBytes { SecretBytes(copying: $0) }
    }

    // MARK: The document

    func testVectorsArePresent() throws {
        try checkPresence(try documentBlocks())
    }

    func testSealVectors() throws {
        let blocks = try documentBlocks()
        XCTAssertEqual(try checkSeal(blocks), 6)
    }

    func testReceiveVectors() throws {
        let blocks = try documentBlocks()
        XCTAssertGreaterThanOrEqual(try checkReceive(blocks), 30)
    }

    func testKeypairVectors() throws {
        let blocks = try documentBlocks().filter(\.isKeypair)
        XCTAssertGreaterThanOrEqual(blocks.count, 2)
        let alg = try CryptoAlgorithms()
        for b in blocks {
            func secret(_ key: String) -> SecretBytes? {
                let h = Self.hex(b.fields[key] ?? "")
                return h.isEmpty ? nil : h.withUnsafeBytes { SecretBytes(copying: $0) }
            }
            let privA = try XCTUnwrap(secret("private_a")), privB = try XCTUnwrap(secret("private_b"))
            let pubA = Self.hex(b.fields["public_a"]!), pubB = Self.hex(b.fields["public_b"]!)
            XCTAssertEqual(try X25519.publicKey(of: privA), pubA, b.name)
            XCTAssertEqual(try X25519.publicKey(of: privB), pubB, b.name)
            let shared = try X25519.sharedSecret(privateKey: privA, peerPublic: pubB)
            XCTAssertEqual(shared.withUnsafeBytes { Self.hexString($0) }, b.fields["shared"], b.name)
            let psk = secret("psk")
            let tA = try TunnelKey.derive(privateKey: privA, peerPublic: pubB, psk: psk, algorithms: alg)
            let tB = try TunnelKey.derive(privateKey: privB, peerPublic: pubA, psk: psk, algorithms: alg)
            XCTAssertEqual(tA.withUnsafeBytes { Self.hexString($0) }, b.fields["tunnel_key"], "\(b.name): A's side")
            XCTAssertEqual(tB.withUnsafeBytes { Self.hexString($0) }, b.fields["tunnel_key"], "\(b.name): B's side")
        }
    }

    func testKeyIdVectors() throws {
        let blocks = try documentBlocks().filter(\.isKeyId)
        XCTAssertGreaterThanOrEqual(blocks.count, 4)
        XCTAssertTrue(blocks.contains { $0.fields["sha256"] != nil }, "no key id vector shows its hash")
        for b in blocks {
            let id = try XCTUnwrap(b.fields["id"], b.name)
            XCTAssertTrue(ClientID.isValid(id), "\(b.name): \(id) is no identifier")
            let text = try XCTUnwrap(b.fields["key_id"], b.name)
            XCTAssertTrue(text.hasPrefix("0x") && text.count == 10, "\(b.name): key_id \(text)")
            XCTAssertEqual(ClientKeyID.keyId(for: id), UInt32(text.dropFirst(2), radix: 16), b.name)
            if let digest = b.fields["sha256"] {
                XCTAssertEqual(Self.hexString(ClientKeyID.sha256(Array(ClientKeyID.label.utf8) + Array(id.utf8))),
                               digest, b.name)
            }
        }
    }

    func testUnknownSuiteNameIsNoSuite() {
        // A block whose suite is not one of the three is an error, not a skip.
        let bad = Self.parse("```vector\nname: seal-x\nsuite: aes-128-gcm\n```\n")
        XCTAssertNil(bad[0].suite)
    }

    // MARK: Checks

    func checkPresence(_ blocks: [Block]) throws {
        XCTAssertGreaterThanOrEqual(blocks.count, 20)
        for b in blocks where !b.isKeypair && !b.isKeyId { XCTAssertNotNil(b.suite, "\(b.name): no known suite") }
        // Every suite has a seal vector.
        for s in SuiteID.allCases {
            XCTAssertTrue(blocks.contains { $0.isSeal && $0.suite == s }, "no seal vector for \(s.name)")
        }
        // Every drop reason of the protocol has a vector.
        let reasons = Set(blocks.flatMap { $0.steps.map(\.expect) }.filter { $0.hasPrefix("drop ") })
        // rate-limited is not a check of the protocol but this implementation's
        // bound on key derivations (it depends on time and rate): no vector.
        for r in DropReason.allCases where r != .rateLimited {
            XCTAssertTrue(reasons.contains("drop \(r.name)"), "no vector for \(r.name)")
        }
    }

    /// Seal blocks checked; their number.
    func checkSeal(_ blocks: [Block]) throws -> Int {
        let alg = try CryptoAlgorithms()
        var n = 0
        for b in blocks where b.isSeal {
            switch b.suite {
            case .aes256CBCHMACSHA256: try checkCBCSeal(b, alg)
            case .aes256GCM: try checkAEADSeal(b, alg, AES256GCMCipher.self)
            case .chacha20Poly1305: try checkAEADSeal(b, alg, ChaCha20Poly1305Cipher.self)
            case nil: XCTFail("\(b.name): unknown suite \(b.fields["suite"] ?? "none")"); continue
            }
            n += 1
        }
        return n
    }

    func header(_ b: Block) -> Header {
        let f = b.fields
        return Header(type: f["type"] == "data" ? .data : .keepalive, session: UInt64(f["session"]!)!,
                      counter: UInt64(f["counter"]!)!, timestampMs: UInt64(f["timestamp_ms"]!)!)
    }

    func sealed<C: SuiteCipher>(_ cipher: C, _ b: Block) throws -> [UInt8] {
        let payload = Self.hex(b.fields["payload"]!)
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = try buf.withUnsafeMutableBytes { p in
            p.baseAddress!.advanced(by: C.Suite.payloadStart).copyMemory(from: payload, byteCount: payload.count)
            return try cipher.seal(header: header(b), payloadLength: payload.count, packet: p)
        }
        return Array(buf[0..<n])
    }

    func checkCBCSeal(_ b: Block, _ alg: CryptoAlgorithms) throws {
        let f = b.fields
        let keys = try SessionKeys(algorithms: alg, psk: Self.psk(b), session: UInt64(f["session"]!)!)
        keys.enc.withUnsafeBytes { XCTAssertEqual(Self.hexString($0), f["k_enc"], b.name) }
        keys.mac.withUnsafeBytes { XCTAssertEqual(Self.hexString($0), f["k_mac"], b.name) }
        keys.iv.withUnsafeBytes { XCTAssertEqual(Self.hexString($0), f["k_iv"], b.name) }
        let cipher = try PacketCipher(algorithms: alg)
        try cipher.setKeys(keys)
        let packet = try sealed(cipher, b)
        XCTAssertEqual(Self.hexString(packet[Wire.offsetIV..<Wire.offsetCiphertext]), f["iv"], b.name)
        XCTAssertEqual(Self.hexString(packet), f["packet"], b.name)
    }

    func checkAEADSeal<C: AEADSuiteCipher>(_ b: Block, _ alg: CryptoAlgorithms, _: C.Type) throws {
        let f = b.fields
        let session = UInt64(f["session"]!)!
        let deriver = try SessionKeyDeriver(psk: Self.psk(b))
        var okm = [UInt8](repeating: 0, count: C.Suite.keyMaterialLength)
        XCTAssertTrue(okm.withUnsafeMutableBytes { deriver.derive(session: session, suite: b.suite!, into: $0) })
        XCTAssertEqual(Self.hexString(okm[0..<32]), f["key"], b.name)
        XCTAssertEqual(Self.hexString(okm[32...]), f["nonce_salt"], b.name)
        // The nonce as the protocol defines it, from the block's own fields.
        var nonce = Self.hex(f["nonce_salt"] ?? "")
        let counter = UInt64(f["counter"]!)!
        if nonce.count == 12 {
            for i in 0..<8 { nonce[4 + i] ^= UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64(i))) }
        }
        XCTAssertEqual(Self.hexString(nonce), f["nonce"], b.name)
        let cipher = try C(algorithms: alg)
        try deriver.setKeys(of: session, in: cipher)
        XCTAssertEqual(Self.hexString(try sealed(cipher, b)), f["packet"], b.name)
    }

    /// Receive steps checked; their number.
    func checkReceive(_ blocks: [Block]) throws -> Int {
        let alg = try CryptoAlgorithms()
        var checked = 0
        for b in blocks where !b.isSeal && !b.isKeypair && !b.isKeyId {
            switch b.suite {
            case .aes256CBCHMACSHA256: checked += try receive(b, alg, PacketCipher.self)
            case .aes256GCM: checked += try receive(b, alg, AES256GCMCipher.self)
            case .chacha20Poly1305: checked += try receive(b, alg, ChaCha20Poly1305Cipher.self)
            case nil: XCTFail("\(b.name): unknown suite \(b.fields["suite"] ?? "none")")
            }
        }
        return checked
    }

    func receive<C: SuiteCipher>(_ b: Block, _ alg: CryptoAlgorithms, _: C.Type) throws -> Int {
        let f = b.fields
        let opener = try SuiteOpener<C, SessionKeyDeriver>(
            algorithms: alg, psk: Self.psk(b), ownSession: UInt64(f["own_session"]!)!,
            startMs: UInt64(f["start_ms"]!)!,
            formerSessions: (f["former_sessions"] ?? "").split(separator: " ").map { UInt64($0)! },
            skewSeconds: Int(f["skew_s"]!)!, ethernet: f["mode"] == "tap")
        XCTAssertTrue(["tun", "tap"].contains(f["mode"] ?? "tun"), "\(b.name): unknown mode \(f["mode"] ?? "")")
        let now = UInt64(f["now_ms"]!)!
        XCTAssertFalse(b.steps.isEmpty, b.name)
        for (i, step) in b.steps.enumerated() {
            var pkt = step.packet
            let got: String = pkt.withUnsafeMutableBytes { p in
                switch C.open(p, with: opener, fromPeer: step.from == "peer", nowMs: now, monotonicMs: now) {
                case .data(let length):
                    return "data " + Self.hexString(p[C.Suite.payloadStart..<(C.Suite.payloadStart + length)])
                case .keepalive: return "keepalive"
                case .drop(let r): return "drop \(r.name)"
                }
            }
            XCTAssertEqual(got, step.expect, "\(b.name) step \(i + 1)")
        }
        return b.steps.count
    }
}
