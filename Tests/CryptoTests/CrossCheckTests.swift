import Foundation
import Shared
import XCTest
@testable import squtun_crypto

/// Compares HKDF, IV, AES-CBC, PKCS#7 and HMAC, and both AEAD suites
/// (nonce, associated data, tag), byte for byte with an independent
/// implementation: Python's `cryptography` package (Debian:
/// python3-cryptography). Fails, never skips, if it is missing.
final class CrossCheckTests: XCTestCase {
    static let script = #"""
import json, sys
try:
    from cryptography.hazmat.primitives import hashes, hmac, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError as e:
    sys.stderr.write("python3 lacks the 'cryptography' package (%s): install python3-cryptography\n" % e)
    sys.exit(3)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
req = json.load(sys.stdin)
psk = bytes.fromhex(req["psk"])
out = []
for p in req["packets"]:
    session, counter, suite = p["session"], p["counter"], p["suite"]
    okm = HKDF(algorithm=hashes.SHA256(), length=96 if suite == 1 else 44, salt=b"squtun protocol v2",
               info=b"squtun v2 session keys" + bytes([suite]) + session.to_bytes(8, "big")).derive(psk)
    header = bytes([2, suite, p["type"], 0]) + bytes(4) + session.to_bytes(8, "big") \
        + counter.to_bytes(8, "big") + p["timestamp"].to_bytes(8, "big")
    payload = bytes.fromhex(p["payload"])
    if suite != 1:
        key, salt = okm[:32], okm[32:]
        nonce = bytes(a ^ b for a, b in zip(salt, bytes(4) + counter.to_bytes(8, "big")))
        aead = AESGCM(key) if suite == 2 else ChaCha20Poly1305(key)
        out.append({"keys": okm.hex(), "iv": nonce.hex(), "packet": (header + aead.encrypt(nonce, payload, header)).hex()})
        continue
    k_enc, k_mac, k_iv = okm[:32], okm[32:64], okm[64:]
    e = Cipher(algorithms.AES(k_iv), modes.ECB()).encryptor()
    iv = e.update(session.to_bytes(8, "big") + counter.to_bytes(8, "big")) + e.finalize()
    padder = padding.PKCS7(128).padder()
    plain = padder.update(payload) + padder.finalize()
    e = Cipher(algorithms.AES(k_enc), modes.CBC(iv)).encryptor()
    ct = e.update(plain) + e.finalize()
    h = hmac.HMAC(k_mac, hashes.SHA256())
    h.update(header + iv + ct)
    out.append({"keys": (k_enc + k_mac + k_iv).hex(), "iv": iv.hex(),
                "packet": (header + iv + ct + h.finalize()).hex()})
json.dump(out, sys.stdout)
"""#

    struct Result: Decodable { let keys: String; let iv: String; let packet: String }

    /// Runs the script with /usr/bin/python3 if present, else `python3` from PATH.
    func python(_ request: [String: Any]) throws -> [Result] {
        let proc = Process()
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") {
            proc.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            proc.arguments = ["-c", Self.script]
        } else {
            proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            proc.arguments = ["python3", "-c", Self.script]
        }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        proc.standardInput = stdin
        proc.standardOutput = stdout
        proc.standardError = stderr
        do { try proc.run() } catch {
            XCTFail("cannot run python3 (needed for the cross-check; Debian: apt install python3 python3-cryptography): \(error)")
            throw error
        }
        stdin.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: request))
        try stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        proc.waitUntilExit()
        guard proc.terminationStatus == 0 else {
            XCTFail("python3 cross-check failed (status \(proc.terminationStatus)): \(err)")
            throw CocoaError(.executableLoad)
        }
        return try JSONDecoder().decode([Result].self, from: out)
    }

    func testSealMatchesPythonCryptography() throws {
        let alg = try CryptoAlgorithms()
        let psk = CT.psk(0x5a)
        var packets: [[String: Any]] = []
        var ours: [(keys: String, packet: [UInt8])] = []
        var ciphers: [UInt64: PacketCipher] = [:]
        let cases: [(UInt64, UInt64, PacketType, Int)] = [
            (1, 0, .keepalive, 0), (1, 1, .data, 1), (1, 2, .data, 15), (1, 3, .data, 16), (1, 4, .data, 17),
            (1, 5, .data, 1400), (0xfedc_ba98_7654_3210, 0, .data, 100), (0xfedc_ba98_7654_3210, 1 << 40, .data, 1500),
            (0xfedc_ba98_7654_3210, UInt64.max, .keepalive, 0), (1, 6, .data, Wire.maxPayloadLength),
        ]
        for (session, counter, type, length) in cases {
            let keys = try SessionKeys(algorithms: alg, psk: psk, session: session)
            if ciphers[session] == nil { ciphers[session] = try CT.cipher(alg, psk: psk, session: session) }
            let payload = CT.payload(length, seed: Int(counter & 0xff))
            let header = Header(type: type, session: session, counter: counter, timestampMs: 1_234_567_890_123 + counter % 1000)
            // One long-lived cipher per session, as in the daemon.
            ours.append((CT.hex(keys.enc) + CT.hex(keys.mac) + CT.hex(keys.iv),
                         try CT.seal(ciphers[session]!, header, payload)))
            packets.append(["session": session, "counter": counter, "type": Int(type.rawValue), "suite": 1,
                            "timestamp": header.timestampMs, "payload": CT.hex(payload)])
        }
        let theirs = try python(["psk": CT.hex(psk), "packets": packets])
        XCTAssertEqual(theirs.count, cases.count)
        for (i, (o, t)) in zip(ours, theirs).enumerated() {
            XCTAssertEqual(o.keys, t.keys, "keys of case \(i)")
            XCTAssertEqual(CT.hex(o.packet[Wire.offsetIV..<Wire.offsetCiphertext]), t.iv, "IV of case \(i)")
            XCTAssertEqual(CT.hex(o.packet), t.packet, "packet of case \(i)")
            // And Python's datagram opens with ours.
            let session = cases[i].0
            XCTAssertEqual(CT.open(ciphers[session]!, CT.bytes(t.packet)), CT.payload(cases[i].3, seed: Int(cases[i].1 & 0xff)),
                           "opening Python's packet \(i)")
        }
    }

    /// The AEAD suites against Python's AESGCM / ChaCha20Poly1305: key
    /// material, nonce (N_salt XOR counter: a wrong nonce changes every
    /// byte) and the header as associated data; and Python's datagrams open here.
    func testAEADSealMatchesPythonCryptography() throws {
        try aeadCrossCheck(AES256GCMCipher.self)
        try aeadCrossCheck(ChaCha20Poly1305Cipher.self)
    }

    private func aeadCrossCheck<C: AEADSuiteCipher>(_: C.Type) throws {
        let alg = try CryptoAlgorithms()
        let psk = CT.psk(0x5b)
        let deriver = try SessionKeyDeriver(psk: psk)
        let cases: [(UInt64, UInt64, PacketType, Int)] = [
            (1, 0, .keepalive, 0), (1, 1, .data, 1), (1, 2, .data, 15), (1, 3, .data, 16), (1, 5, .data, 1400),
            (0xfedc_ba98_7654_3210, 1 << 40, .data, 1500), (0xfedc_ba98_7654_3210, UInt64.max, .keepalive, 0),
            (7, 0x0102_0304_0506_0708, .data, C.Suite.maxPayloadLength),
        ]
        var packets: [[String: Any]] = []
        var ours: [(keys: String, packet: [UInt8])] = []
        for (session, counter, type, length) in cases {
            let c = try C(algorithms: alg)
            try deriver.setKeys(of: session, in: c)
            var okm = [UInt8](repeating: 0, count: C.Suite.keyMaterialLength)
            XCTAssertTrue(okm.withUnsafeMutableBytes {
                deriver.derive(session: session, suite: SuiteID(rawValue: C.Suite.id)!, into: $0)
            })
            let payload = CT.payload(length, seed: Int(counter & 0xff))
            let header = Header(type: type, session: session, counter: counter, timestampMs: 1_234_567_890_123)
            ours.append((CT.hex(okm), try CT.seal(c, header, payload)))
            packets.append(["session": session, "counter": counter, "type": Int(type.rawValue),
                            "suite": Int(C.Suite.id), "timestamp": header.timestampMs, "payload": CT.hex(payload)])
        }
        let theirs = try python(["psk": CT.hex(psk), "packets": packets])
        XCTAssertEqual(theirs.count, cases.count)
        for (i, (o, t)) in zip(ours, theirs).enumerated() {
            XCTAssertEqual(o.keys, t.keys, "\(C.self): keys of case \(i)")
            XCTAssertEqual(CT.hex(o.packet), t.packet, "\(C.self): packet of case \(i)")
            let c = try C(algorithms: alg)
            try deriver.setKeys(of: cases[i].0, in: c)
            XCTAssertEqual(CT.open(c, CT.bytes(t.packet)), CT.payload(cases[i].3, seed: Int(cases[i].1 & 0xff)),
                           "\(C.self): opening Python's packet \(i)")
        }
    }
}
