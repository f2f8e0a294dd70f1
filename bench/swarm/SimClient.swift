import Glibc
import Shared
import SqutunConfig
import SqutunDataPath
import squtun_crypto

/// One simulated client: its identifier and key id, its own UDP socket
/// (its own source port, connected to the server, so it hears only the
/// server), and a real sealer and opener for its key id — the server sees
/// exactly what a `squtun --id NAME` client would send.
final class SimClient<Cipher: SuiteCipher> {
    let index: Int
    let name: String
    let keyId: UInt32
    let fd: Int32
    let inner: (server: UInt32, client: UInt32)
    private let sealer: SuiteSealer<Cipher>
    private let opener: SuiteOpener<Cipher, SessionKeyDeriver>
    private var sequence: UInt16 = 0

    /// When it started connecting, and its first answered echo request
    /// (monotonic ns).
    var startedNs: UInt64?
    var connectedNs: UInt64?
    /// When its last echo request or keepalive went out (monotonic ns).
    var lastSentNs: UInt64 = 0
    var keepalivesSent = 0
    var keepalivesReceived = 0
    var repliesReceived = 0
    /// Datagrams from the server its opener refused, and sends the kernel refused.
    var refused = 0
    var sendFailures = 0

    /// `start`: this process's run start; the client gets a session of its
    /// own within it (its own random low bits).
    init(index: Int, peers: String, start: RunStart, algorithms: CryptoAlgorithms, bind: UInt32,
         server: sockaddr_in) throws(SwarmError) {
        self.index = index
        name = clientName(index)
        keyId = ClientKeyID.keyId(for: name)
        inner = innerAddresses(index)
        do {
            let key = try KeyFile.read(path: peers + "/" + name)
            defer { key.wipe() }
            let low = try RunStart.randomWord() & (RunStart.tickNs - 1)
            let own = RunStart(session: start.session & ~(RunStart.tickNs - 1) | low, wallMs: start.wallMs,
                               monotonicMs: start.monotonicMs)
            let crypto = try SuiteCrypto<Cipher>(keySource: SessionKeyDeriver(psk: key), start: own,
                                                 skewSeconds: Wire.defaultSkewSeconds, keyId: keyId,
                                                 algorithms: algorithms)
            sealer = crypto.sealer
            opener = crypto.opener
        } catch {
            throw .system("\(name): \(error)")
        }
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("\(name): socket: \(String(cString: strerror(errno)))") }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr = in_addr(s_addr: bind.bigEndian)
        var to = server
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, size) } }
        let connected = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) } }
        guard bound == 0, connected == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw .system("\(name): bind/connect: \(why)")
        }
    }

    deinit { close(fd) }

    func sendKeepalive(_ buffer: UnsafeMutableRawBufferPointer, nowNs: UInt64) {
        if send(.keepalive, payloadLength: 0, buffer, nowNs: nowNs) { keepalivesSent += 1 }
    }

    func sendEcho(_ buffer: UnsafeMutableRawBufferPointer, nowNs: UInt64) {
        sequence &+= 1
        let length = Echo.writeRequest(buffer.baseAddress! + Cipher.Suite.payloadStart, from: inner.client,
                                       to: inner.server, id: UInt16(truncatingIfNeeded: index), sequence: sequence,
                                       sentNs: nowNs)
        _ = send(.data, payloadLength: length, buffer, nowNs: nowNs)
    }

    private func send(_ type: PacketType, payloadLength: Int, _ buffer: UnsafeMutableRawBufferPointer,
                      nowNs: UInt64) -> Bool {
        lastSentNs = nowNs
        guard let n = try? sealer.seal(type: type, payloadLength: payloadLength, packet: buffer, nowMs: WallClock.nowMs()),
              Glibc.send(fd, buffer.baseAddress, n, 0) == n else {
            sendFailures += 1
            return false
        }
        return true
    }

    /// Opens every datagram waiting on its socket; `reply` gets the round
    /// trip (ns) of each echo reply.
    func receive(_ buffer: UnsafeMutableRawBufferPointer, reply: (UInt64) -> Void) {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            guard n > 0 else { return }
            let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
            switch opener.open(packet, fromPeer: true, nowMs: WallClock.nowMs(), monotonicMs: MonotonicClock.nowMs()) {
            case .keepalive:
                keepalivesReceived += 1
            case .data(let length):
                guard let sent = Echo.replySentNs(buffer.baseAddress! + Cipher.Suite.payloadStart, length: length,
                                                  id: UInt16(truncatingIfNeeded: index), to: inner.client)
                else { continue }
                repliesReceived += 1
                reply(monotonicNs() &- sent)
            case .drop:
                refused += 1
            }
        }
    }
}

/// CLOCK_MONOTONIC in ns.
func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
