import XCTest
import SqutunSystem
import SqutunDataPath
import Shared
import squtun_crypto
#if canImport(Glibc)
import Glibc
#endif

/// A tunnel end of the default suite (most tests); `SuiteEnd` of any other.
typealias End = SuiteEnd<PacketCipher>

/// A tunnel end on the fake network: a real Device, Peer, Sealer and
/// Opener of one suite over a fake device and a fake socket.
final class SuiteEnd<Cipher: SuiteCipher> {
    let tun = FakeDevice()
    let socket: FakeSocket
    let device: Device<FakeDevice, FakeSocket, Cipher>
    let session: UInt64
    private let sink: LogSink

    final class LogSink {
        var lines: [String] = []
    }

    var logs: [String] { sink.lines }
    var peer: Peer<Cipher> { device.peers[0] }

    init(at address: SocketAddress, peer: SocketAddress?, session: UInt64, clock: FakeClock, network: FakeNetwork,
         keepaliveMs: UInt64 = 25_000, formerSessions: [UInt64] = [], psk: SecretBytes = End.psk(),
         derivationBurst: UInt64 = DerivationBudget.burst) throws {
        let alg = try CryptoAlgorithms()
        let sealer = try SuiteSealer<Cipher>(algorithms: alg, psk: psk, session: session)
        let opener = try SuiteOpener<Cipher, SessionKeyDeriver>(algorithms: alg, psk: psk, ownSession: session, startMs: clock.wallMs,
                                startMonotonicMs: clock.monotonicMs, formerSessions: formerSessions,
                                skewSeconds: 30, derivationBurst: derivationBurst)
        self.session = session
        socket = FakeSocket(address, on: network)
        let sink = LogSink()
        self.sink = sink
        device = Device(io: tun, net: socket, interface: "sq0",
                        peers: [Peer(address: peer, sealer: sealer, opener: opener, keepaliveMs: keepaliveMs)],
                        clock: clock.seam, log: { _, line in sink.lines.append(line) })
    }

    static func psk(_ seed: UInt8 = 0x42) -> SecretBytes {
        let key = SecretBytes(count: 32)
        key.withUnsafeMutableBytes { for i in 0..<32 { $0[i] = seed &+ UInt8(i) } }
        return key
    }

    /// A session identifier as RunStart makes them: the wall clock's tick, random low bits.
    static func session(wallMs: UInt64, low: UInt64) -> UInt64 {
        ((wallMs * 1_000_000) >> UInt64(RunStart.randomBits)) << UInt64(RunStart.randomBits) | low
    }

    /// Hands `packets` to the device and runs the send loop.
    @discardableResult
    func send(_ packets: [[UInt8]]) -> String? {
        tun.toRead += packets
        return device.send()
    }

    func status(_ name: String) -> String? {
        for line in device.statusText(logLinesDropped: 0).split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0] == name { return String(parts[1].drop(while: { $0 == " " })) }
        }
        return nil
    }

    func dropped(_ r: DropReason) -> UInt64 { device.counters.dropped(r) }
}

/// An IPv4 packet of `length` bytes (its total length field set), the rest
/// bytes from `seed`.
func ipPacket(_ length: Int, seed: UInt64) -> [UInt8] {
    var p = [UInt8](repeating: 0, count: length)
    var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    for i in 0..<length {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        p[i] = UInt8(truncatingIfNeeded: x)
    }
    p[0] = 0x45
    p[2] = UInt8(truncatingIfNeeded: min(length, 65535) >> 8)
    p[3] = UInt8(truncatingIfNeeded: min(length, 65535))
    return p
}

func address(_ literal: String, _ port: UInt16) -> SocketAddress { SocketAddress.parse(literal: literal, port: port)! }
