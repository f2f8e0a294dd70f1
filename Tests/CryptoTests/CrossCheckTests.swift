import Foundation
import Shared
import XCTest
@testable import squtun_crypto

/// Compares HKDF, IV, AES-CBC, PKCS#7 and HMAC byte for byte with an
/// independent implementation: Python's `cryptography` package (Debian:
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
req = json.load(sys.stdin)
psk = bytes.fromhex(req["psk"])
out = []
for p in req["packets"]:
    session, counter = p["session"], p["counter"]
    okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=b"squtun protocol v1",
               info=b"squtun v1 session keys" + session.to_bytes(8, "big")).derive(psk)
    k_enc, k_mac, k_iv = okm[:32], okm[32:64], okm[64:]
    header = bytes([1, p["type"], 0, 0]) + session.to_bytes(8, "big") + counter.to_bytes(8, "big") \
        + p["timestamp"].to_bytes(8, "big")
    e = Cipher(algorithms.AES(k_iv), modes.ECB()).encryptor()
    iv = e.update(session.to_bytes(8, "big") + counter.to_bytes(8, "big")) + e.finalize()
    padder = padding.PKCS7(128).padder()
    plain = padder.update(bytes.fromhex(p["payload"])) + padder.finalize()
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
            packets.append(["session": session, "counter": counter, "type": Int(type.rawValue),
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
}
