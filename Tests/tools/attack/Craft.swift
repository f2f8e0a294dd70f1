import CShim
import Shared
import SqutunConfig
import SqutunDataPath
import squtun_crypto

/// Seals datagrams like a squtun sender of any suite, but with any session,
/// counter and timestamp we choose, using the project's own crypto (the
/// suite's `SuiteCipher`, keyed by `SessionKeyDeriver`): with the real key
/// for the skew and old-session classes, with a random wrong key for the
/// forge class.
final class Crafter {
    private let keys: SessionKeyDeriver
    private let cipher: any SuiteCipher
    private let payloadStart: Int
    private var keyedSession: UInt64?
    let buffer: UnsafeMutableRawBufferPointer

    /// `keyPath` nil: a fresh random key (not the tunnel's).
    init(keyPath: String?, suite: SuiteID) throws(AttackError) {
        let psk: SecretBytes
        if let keyPath {
            do { psk = try KeyFile.read(path: keyPath) } catch { throw .system("key file: \(error)") }
        } else {
            psk = SecretBytes(count: Wire.pskLength)
            _ = psk.withUnsafeMutableBytes { squtun_getrandom($0.baseAddress, $0.count) }
        }
        do {
            let algorithms = try CryptoAlgorithms()
            cipher = try makeCipher(suite, algorithms)
            keys = try SessionKeyDeriver(psk: psk)
        } catch {
            throw .system("OpenSSL: \(error)")
        }
        payloadStart = suite.layout.payloadStart
        buffer = .allocate(byteCount: Wire.maxPacketLength + 64, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Seals a datagram whose payload `fill` writes at the suite's payload
    /// offset (returning its length); the datagram is `buffer[0..<result]`.
    func seal(type: PacketType, session: UInt64, counter: UInt64, timestampMs: UInt64, keyId: UInt32 = 0,
              flags: UInt8 = 0, fill: (UnsafeMutableRawPointer) -> Int) throws(AttackError) -> Int {
        if keyedSession != session {
            do { try keys.setKeys(of: session, in: cipher) } catch { throw .system("deriving keys: \(error)") }
            keyedSession = session
        }
        let length = type == .data ? fill(buffer.baseAddress! + payloadStart) : 0
        let header = Header(type: type, flags: flags, keyId: keyId, session: session, counter: counter, timestampMs: timestampMs)
        do {
            return try cipher.seal(header: header, payloadLength: length, packet: buffer)
        } catch {
            throw .system("seal: \(error)")
        }
    }
}

/// The library's cipher of `suite` (the one squtun itself runs).
private func makeCipher(_ suite: SuiteID, _ algorithms: CryptoAlgorithms) throws -> any SuiteCipher {
    switch suite {
    case .aes256CBCHMACSHA256: return try PacketCipher(algorithms: algorithms)
    case .aes256GCM: return try AES256GCMCipher(algorithms: algorithms)
    case .chacha20Poly1305: return try ChaCha20Poly1305Cipher(algorithms: algorithms)
    }
}

/// The key id `--client NAME` (a server's client: its key id, computed as
/// squtun computes it) or `--key-id N` (any number, 0x… for hex) names:
/// the key id the attacked receiver expects of the datagrams (0, the
/// default, between point-to-point peers), which sealed, forged and
/// flooded datagrams carry and `replay` writes into recorded ones.
func keyIdOption(_ a: Args) throws(AttackError) -> UInt32 {
    let name = a.string("client", default: "")
    let number = a.string("key-id", default: "")
    if !name.isEmpty {
        if !number.isEmpty { throw .usage("--client and --key-id: one or the other") }
        if let problem = ClientID.problem(name) { throw .usage("--client: \(problem)") }
        return ClientKeyID.keyId(for: name)
    }
    if number.isEmpty { return 0 }
    let parsed = number.hasPrefix("0x") ? UInt32(number.dropFirst(2), radix: 16) : UInt32(number)
    guard let keyId = parsed else { throw .usage("--key-id: '\(number)' is not a 32-bit number") }
    return keyId
}

/// The suite `--cipher NAME` names (default: the default suite).
func suiteOption(_ a: Args) throws(AttackError) -> SuiteID {
    let name = a.string("cipher", default: SuiteID.defaultSuite.name)
    guard let suite = SuiteID(name: name) else { throw .usage("--cipher: unknown suite '\(name)'") }
    return suite
}

/// `--tap`: the attacked end runs in TAP mode (Ethernet frames). The flags
/// byte what we seal, forge and flood carries: the attacked end's mode
/// (bit 0 set in TAP mode), or with `--other-mode` the other one — a
/// datagram of the other mode, which check 1c refuses as wrong-mode.
func modeFlags(_ a: Args) -> UInt8 {
    a.flag("tap") != a.flag("other-mode") ? Wire.flagEthernet : 0
}

/// The payload of a sealed datagram: the marker packet, and in TAP mode
/// (`ethernet`, flags bit 0) a broadcast Ethernet frame carrying it (14
/// more bytes): what a receiver in that mode would deliver, if it did.
func writeMarker(_ p: UnsafeMutableRawPointer, length: Int, destination: UInt32, ethernet: Bool) -> Int {
    guard ethernet else { return writeMarkerPacket(p, length: length, destination: destination) }
    for i in 0..<6 { p.storeBytes(of: UInt8(0xff), toByteOffset: i, as: UInt8.self) }
    for i in 6..<12 { p.storeBytes(of: UInt8(i == 6 ? 0x02 : 0x66), toByteOffset: i, as: UInt8.self) }
    p.put16(0x0800, 12)
    return 14 + writeMarkerPacket(p + 14, length: length, destination: destination)
}

/// An IPv4/UDP packet 10.66.6.6:6666 → `destination`:9 carrying
/// "squtun-attack" and filler, `length` bytes (>= 28) in all: the payload of
/// every datagram we seal. Should one ever reach a tun device, the tun-side
/// counter sees a packet that is not live traffic.
func writeMarkerPacket(_ p: UnsafeMutableRawPointer, length: Int, destination: UInt32) -> Int {
    let n = max(28, length)
    p.storeBytes(of: UInt8(0x45), toByteOffset: 0, as: UInt8.self)
    p.storeBytes(of: UInt8(0), toByteOffset: 1, as: UInt8.self)
    p.put16(UInt16(n), 2)
    p.put16(0x5a5a, 4)
    p.put16(0, 6)
    p.storeBytes(of: UInt8(64), toByteOffset: 8, as: UInt8.self)
    p.storeBytes(of: UInt8(17), toByteOffset: 9, as: UInt8.self)
    p.put16(0, 10)
    p.put32(0x0a42_0606, 12)  // 10.66.6.6
    p.put32(destination, 16)
    Checksum.setIPv4Header(p, headerLength: 20)
    p.put16(6666, 20)
    p.put16(9, 22)
    p.put16(UInt16(n - 20), 24)
    p.put16(0, 26)
    let text = Array("squtun-attack ".utf8)
    for i in 28..<n { p.storeBytes(of: text[(i - 28) % text.count], toByteOffset: i, as: UInt8.self) }
    return n
}
