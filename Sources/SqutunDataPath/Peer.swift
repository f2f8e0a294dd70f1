import SqutunSystem
import Shared
import squtun_crypto

/// The other end of the tunnel as one tunnel end sees it: where it is (and
/// where it moved), the sealer of what goes to it and the opener of what
/// comes from it, when it is due a keepalive, whether sending to it works,
/// and its counters. A device holds a list of them (today one). Generic
/// over the cipher suite, like the device that holds it.
public final class Peer<Cipher: SuiteCipher> {
    /// Where datagrams go; nil until configured (-p) or learnt.
    public internal(set) var address: SocketAddress?
    /// From -p: SIGHUP returns to it.
    public let configuredAddress: SocketAddress?
    public let sealer: SuiteSealer<Cipher>
    public let opener: SuiteOpener<Cipher, SessionKeyDeriver>
    var keepalive: KeepaliveSchedule
    /// Whether sends to it fail: logged when that changes.
    var health = SendHealth()
    /// UDP GSO for runs of equal-sized datagrams, paused while the kernel refuses it.
    var gso = GSOSchedule()
    public internal(set) var counters = Counters()

    public typealias Counters = PeerCounters

    public init(address: SocketAddress?, sealer: SuiteSealer<Cipher>, opener: SuiteOpener<Cipher, SessionKeyDeriver>,
                keepaliveMs: UInt64) {
        self.address = address
        configuredAddress = address
        self.sealer = sealer
        self.opener = opener
        keepalive = KeepaliveSchedule(intervalMs: keepaliveMs)
    }

    /// Roaming: an authenticated datagram came from `newAddress`. Returns
    /// the line to log.
    func move(to newAddress: SocketAddress, nowMs: UInt64) -> String {
        let old = address
        address = newAddress
        counters.addressChanges &+= 1
        keepalive.peerChanged(nowMs: nowMs)
        return old.map { "peer moved from \($0) to \(newAddress)" } ?? "peer is \(newAddress)"
    }

    /// SIGHUP: a learnt address is forgotten, back to the configured one
    /// (or none). Returns the line to log, nil if nothing changed.
    func forgetLearntAddress(nowMs: UInt64) -> String? {
        guard address != configuredAddress else { return nil }
        let line = "SIGHUP: forgetting peer \(address.map { "\($0)" } ?? "none")"
            + (configuredAddress.map { ", back to \($0)" } ?? "")
        address = configuredAddress
        keepalive.peerChanged(nowMs: nowMs)
        return line
    }
}

/// A peer's counters (outside the generic `Peer`: `Stats` holds them whatever the suite).
public struct PeerCounters: Equatable {
    /// Sealed and sent: datagrams and their payload bytes.
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var keepalivesSent: UInt64 = 0
    public var keepalivesReceived: UInt64 = 0
    /// Seals and sends that failed.
    public var sendErrors: UInt64 = 0
    public var addressChanges: UInt64 = 0
    /// CLOCK_MONOTONIC ms of the last datagram that passed every check.
    public var lastAuthenticatedMs: UInt64?
}
