import Shared
import squtun_crypto

/// One suite the benchmark knows: its `--cipher` name, the `openssl speed`
/// work it is compared with, and its measurements, generic over the
/// cipher type (`init` captures the type; the closures are specialised
/// for it).
struct SuiteEntry {
    let name: String
    let reference: OpenSSLReference
    /// Also time what forged datagrams cost the receiver (Forged.swift;
    /// written for the CBC suite's `Opener`).
    let forgedCosts: Bool
    /// The datagram layout's figures for a payload length.
    let layout: (Int) -> Layout
    /// The timed seal/open measurements for a payload length.
    let timed: (CryptoAlgorithms, Int, Double) throws -> SuiteTimes
    /// Exactly `count` seals or opens, nothing else (for bench/callgrind).
    let counted: (CryptoAlgorithms, Int, Int, Bool) throws -> Void

    init<C: SuiteCipher>(_ name: String, _ reference: OpenSSLReference, forgedCosts: Bool = false,
                         make: @escaping (CryptoAlgorithms) throws -> C) {
        self.name = name
        self.reference = reference
        self.forgedCosts = forgedCosts
        layout = { Layout(suite: C.Suite.self, payload: $0) }
        timed = { algorithms, payload, seconds in
            try SuitePair(make: make, algorithms: algorithms, payloadLength: payload).timed(seconds: seconds)
        }
        counted = { algorithms, payload, count, open in
            try SuitePair(make: make, algorithms: algorithms, payloadLength: payload).counted(count, open: open)
        }
    }
}

/// A datagram's lengths for one payload length, from the suite's `CipherSuite`.
struct Layout {
    let payload: Int
    let packet: Int
    /// The payload once sealed (CBC: padded to whole blocks).
    let sealed: Int
    /// Everything in front of the trailer (CBC: what the MAC covers).
    let authenticated: Int

    init<S: CipherSuite>(suite: S.Type, payload: Int) {
        self.payload = payload
        packet = S.packetLength(payload: payload)
        sealed = S.sealedPayloadLength(payload)
        authenticated = packet - S.trailerLength
    }
}

/// ns per packet, as measured.
struct SuiteTimes {
    var seal: Double
    /// `openGross` minus the copy that restores the datagram before each open.
    var open: Double
    var openGross: Double
    var copy: Double
    /// Seal, then open the result (no restoring copy).
    var sealOpen: Double
}

/// Both ends of one session of suite `C`, keyed with the same random key
/// material, and the datagram buffers. Nothing is allocated in the loops.
final class SuitePair<C: SuiteCipher> {
    let sender: C
    let receiver: C
    let payloadLength: Int
    let packetLength: Int
    /// The datagram sealed and opened, exactly `packetLength` bytes.
    let buffer: UnsafeMutableRawBufferPointer
    /// A sealed datagram, copied into `buffer` before each open (opening
    /// works in place).
    let master: UnsafeMutableRawBufferPointer
    private let storage: UnsafeMutableRawBufferPointer
    var header: Header

    init(make: (CryptoAlgorithms) throws -> C, algorithms: CryptoAlgorithms, payloadLength: Int) throws {
        guard (0...C.Suite.maxPayloadLength).contains(payloadLength) else {
            fail("payload \(payloadLength) B: this suite seals 0...\(C.Suite.maxPayloadLength)")
        }
        let sender = try make(algorithms), receiver = try make(algorithms)
        let material = SecretBytes(count: C.keyMaterialLength)
        try material.withUnsafeMutableBytes { try randomBytes($0) }
        try material.withUnsafeBytes {
            try sender.setKeys(material: $0)
            try receiver.setKeys(material: $0)
        }
        material.wipe()
        self.sender = sender
        self.receiver = receiver
        self.payloadLength = payloadLength
        packetLength = C.Suite.packetLength(payload: payloadLength)
        storage = .allocate(byteCount: 2 * packetLength, alignment: 64)
        buffer = UnsafeMutableRawBufferPointer(rebasing: storage[0..<packetLength])
        master = UnsafeMutableRawBufferPointer(rebasing: storage[packetLength...])
        header = benchHeader(payloadLength: payloadLength)

        // Sanity: a sealed datagram opens to the same payload.
        let start = C.Suite.payloadStart
        for i in 0..<packetLength { master[i] = UInt8(truncatingIfNeeded: i &* 7) }
        if payloadLength > 0 { master[start] = 0x45 }  // an IPv4 packet's first byte
        let plain = Array(master[start..<start + payloadLength])
        let n = try sender.seal(header: header, payloadLength: payloadLength, packet: master)
        guard n == packetLength else { fail("seal returned \(n) B, the suite says \(packetLength) B") }
        buffer.copyMemory(from: UnsafeRawBufferPointer(master))
        guard receiver.verify(buffer), receiver.decrypt(buffer) == payloadLength,
              buffer[start..<start + payloadLength].elementsEqual(plain) else {
            fail("a sealed datagram does not open to its payload")
        }
    }

    deinit { storage.deallocate() }

    @inline(__always) func seal() throws {
        header.counter &+= 1
        _ = try sender.seal(header: header, payloadLength: payloadLength, packet: buffer)
    }

    @inline(__always) func restoreAndOpen() -> Bool {
        buffer.copyMemory(from: UnsafeRawBufferPointer(master))
        return receiver.verify(buffer) && receiver.decrypt(buffer) != nil
    }

    func timed(seconds: Double) throws -> SuiteTimes {
        let sealNs = try measure(seconds) { try seal() }
        let copyNs = measure(seconds / 4) { buffer.copyMemory(from: UnsafeRawBufferPointer(master)) }
        var failures = 0
        let openGrossNs = measure(seconds) { if !restoreAndOpen() { failures += 1 } }
        if failures > 0 { fail("\(failures) opens failed") }
        let bothNs = try measure(seconds) {
            try seal()
            if !receiver.verify(buffer) || receiver.decrypt(buffer) == nil { failures += 1 }
        }
        if failures > 0 { fail("\(failures) round trips failed") }
        return SuiteTimes(seal: sealNs, open: openGrossNs - copyNs, openGross: openGrossNs, copy: copyNs,
                          sealOpen: bothNs)
    }

    /// The loops `timed` measures, minus the timing. bench/callgrind counts
    /// only inside seal, verify and decrypt (--toggle-collect), so the
    /// restoring copy is not in its figure.
    func counted(_ count: Int, open: Bool) throws {
        var failures = 0
        if open {
            for _ in 0..<count where !restoreAndOpen() { failures += 1 }
        } else {
            for _ in 0..<count { try seal() }
        }
        if failures > 0 { fail("\(failures) opens failed") }
    }
}

/// The header of the datagrams the benchmark seals: one session, counter
/// from 0. (Where the header gains fields, they are set here.)
func benchHeader(payloadLength: Int) -> Header {
    Header(type: payloadLength == 0 ? .keepalive : .data, session: 0x5eed, counter: 0, timestampMs: 1)
}
