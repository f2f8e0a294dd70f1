// The packet target's reference: docs/PROTOCOL.md's receiver written out
// again for each suite, with libcrypto one-shots (FuzzSupport) in place of
// squtun-crypto: key derivation (HKDF), MAC or AEAD tag, re-sealing, and
// the checks after authentication. Nothing here calls squtun's code but
// the types it compares with (Header, OpenOutcome).

import FuzzSupport
import FuzzOracle
import Shared
import squtun_crypto

// MARK: Fixed inputs (docs/PROTOCOL.md §10)

let ownSession: UInt64 = 1_795_000_000_500_000_000
let startMs: UInt64 = 1_795_000_000_600
let nowMs: UInt64 = 1_795_000_001_000
let skewSeconds = 30
let skewMs = UInt64(skewSeconds) * 1000
let pskBytes: [UInt8] = hexBytes("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")

func hexBytes(_ text: String) -> [UInt8] {
    let hex = Array(text.utf8)
    return (0..<hex.count / 2).map { UInt8(String(decoding: hex[2 * $0 ..< 2 * $0 + 2], as: UTF8.self), radix: 16)! }
}

func be64(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(p[offset + i]) }
    return v
}

func storeBE64(_ v: UInt64, _ p: UnsafeMutableRawBufferPointer, _ offset: Int) {
    for i in 0..<8 { p[offset + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * i)) }
}

/// A receiver's suite as the document describes it (§4-§5).
struct RefSuite {
    /// The header's suite byte: 1 CBC + HMAC, 2 AES-256-GCM, 3 ChaCha20-Poly1305.
    let id: UInt8
    /// The receiver's mode: TAP (Ethernet frames, flags bit 0) or TUN.
    var ethernet = false
    var isAEAD: Bool { id != 1 }
    /// HKDF's L: K_enc ‖ K_mac ‖ K_iv, or K ‖ N_salt.
    var okmLength: Int { isAEAD ? 44 : 96 }
    /// Where the (encrypted) payload starts: behind the IV, or the header.
    var bodyStart: Int { isAEAD ? 32 : 48 }
    /// The MAC or the tag.
    var trailer: Int { isAEAD ? 16 : 32 }

    /// Check 1e: CBC 80 + 16k (k >= 1), AEAD 48 + p.
    func wellFormed(_ n: Int) -> Bool { isAEAD ? n >= 48 : n >= 96 && (n - 80) % 16 == 0 }

    /// §3: HKDF-SHA256(salt "squtun protocol v2", PSK, "squtun v2 session keys" ‖ suite ‖ session).
    func keys(_ session: UInt64) -> [UInt8] {
        let salt = Array("squtun protocol v2".utf8)
        var info = Array("squtun v2 session keys".utf8) + [id]
        for i in 0..<8 { info.append(UInt8(truncatingIfNeeded: session >> (56 - 8 * i))) }
        var okm = [UInt8](repeating: 0, count: okmLength)
        let ok = fuzz_hkdf_sha256(salt, salt.count, pskBytes, pskBytes.count, info, info.count, &okm, okm.count)
        require(ok == 1, "HKDF failed")
        return okm
    }

    /// The AEAD nonce: N_salt XOR (0^4 ‖ counter).
    private func nonce(_ okm: [UInt8], _ counter: UInt64) -> [UInt8] {
        var n = Array(okm[32..<44])
        for i in 0..<8 { n[4 + i] ^= UInt8(truncatingIfNeeded: counter >> (56 - 8 * i)) }
        return n
    }

    /// Check 4: the MAC (over everything but itself) or the tag (header as
    /// associated data) is right under `okm`. Does not touch `d`.
    func authentic(_ d: UnsafeRawBufferPointer, _ okm: [UInt8]) -> Bool {
        let n = d.count
        let base = d.baseAddress!.assumingMemoryBound(to: UInt8.self)
        if !isAEAD {
            var mac = [UInt8](repeating: 0, count: 32)
            let ok = fuzz_hmac_sha256(Array(okm[32..<64]), base, n - 32, &mac)
            require(ok == 1, "HMAC() failed")
            return mac.elementsEqual(UnsafeRawBufferPointer(rebasing: d[(n - 32)...]))
        }
        var body = Array(d[32 ..< n - 16])
        return body.withUnsafeMutableBufferPointer { b in
            fuzz_aead_open(Int32(id), Array(okm[0..<32]), nonce(okm, be64(d, 16)), base, 32,
                           b.baseAddress, b.count, base + n - 16) == 1
        }
    }

    /// Takes `packet[bodyStart ..< n - trailer]` as the plaintext and seals
    /// it in place under `okm` (CBC with the datagram's IV, then the MAC;
    /// AEAD with the nonce of the datagram's counter, header as AAD).
    func reseal(_ packet: UnsafeMutableRawBufferPointer, _ okm: [UInt8]) {
        let n = packet.count
        let base = packet.baseAddress!.assumingMemoryBound(to: UInt8.self)
        if !isAEAD {
            let ok = fuzz_aes256cbc_encrypt(Array(okm[0..<32]), base + 32, base + 48, n - 80)
            require(ok == 1, "AES-256-CBC failed")
            let ok2 = fuzz_hmac_sha256(Array(okm[32..<64]), base, n - 32, base + n - 32)
            require(ok2 == 1, "HMAC() failed")
            return
        }
        let counter = be64(UnsafeRawBufferPointer(packet), 16)
        let ok = fuzz_aead_seal(Int32(id), Array(okm[0..<32]), nonce(okm, counter), base, 32,
                                base + 32, n - 48, base + n - 16)
        require(ok == 1, "AEAD seal failed")
    }

    /// §4 and §6 check 1 (1a–1e, in order) for a receiver of this suite in
    /// its mode (TUN or TAP) between two point-to-point peers.
    func parse(_ d: UnsafeRawBufferPointer) -> Result<Header, Header.SyntaxError> {
        let n = d.count
        if n < 32 { return .failure(.tooShort(n)) }
        if n > 65535 { return .failure(.tooLong(n)) }
        if d[0] == 1 { return .failure(.oldVersion) }
        if d[0] != 2 { return .failure(.unknownVersion(d[0])) }
        if d[1] != id { return .failure(.wrongSuite(d[1])) }
        let type: PacketType
        switch d[2] {
        case 1: type = .data
        case 2: type = .keepalive
        default: return .failure(.unknownType(d[2]))
        }
        if d[3] & 0xfe != 0 { return .failure(.unknownFlags(d[3])) }
        if (d[3] == 1) != ethernet { return .failure(.wrongMode(peerEthernet: d[3] == 1)) }
        let keyId = UInt32(d[4]) << 24 | UInt32(d[5]) << 16 | UInt32(d[6]) << 8 | UInt32(d[7])
        if keyId != 0 { return .failure(.unknownKey(keyId)) }
        if !wellFormed(n) { return .failure(.badLength(n)) }
        return .success(Header(suite: id, type: type, flags: d[3], keyId: 0, session: be64(d, 8), counter: be64(d, 16),
                               timestampMs: be64(d, 24)))
    }

    /// What a fresh receiver must do with an authentic datagram whose
    /// plaintext is `p` (§6 checks 2, 5, 6, then 9 for CBC only, and 10).
    func model(_ h: Header, plaintext p: UnsafeRawBufferPointer) -> OpenOutcome {
        if h.session == ownSession { return .drop(.reflected) }
        let diff = h.timestampMs > nowMs ? h.timestampMs - nowMs : nowMs - h.timestampMs
        if diff > skewMs { return .drop(.timeSkew) }
        if h.timestampMs < startMs { return .drop(.replay) }
        var length = p.count
        if !isAEAD {
            let pad = Int(p[p.count - 1])
            if pad < 1 || pad > 16 { return .drop(.malformed) }
            for i in (p.count - pad)..<p.count where p[i] != UInt8(pad) { return .drop(.malformed) }
            length -= pad
        }
        switch h.type {
        case .data:
            // Check 10: one IPv4 or IPv6 packet (its version nibble); in TAP
            // mode one Ethernet frame, at least its 14-byte header.
            if length == 0 { return .drop(.malformed) }
            if ethernet ? length < 14 : (p[0] >> 4 != 4 && p[0] >> 4 != 6) { return .drop(.malformed) }
            return .data(length: length)
        case .keepalive: return length != 0 ? .drop(.malformed) : .keepalive
        }
    }
}
