import SqutunSystem
import Glibc
import Shared

/// What a device drops before any peer counts it.
public struct DropCounters: Equatable {
    /// Received datagrams dropped, by PROTOCOL.md reason.
    public var drops = [UInt64](repeating: 0, count: DropReason.allCases.count)
    /// Device payloads with nobody to send them to yet.
    public var noPeer: UInt64 = 0
    /// Device payloads longer than the largest payload (Wire.maxPayloadLength):
    /// no datagram can carry them (the device's MTU is too high).
    public var oversize: UInt64 = 0

    public init() {}

    public func dropped(_ r: DropReason) -> UInt64 { drops[r.rawValue] }
}

/// The worker's counters as `squtun status` and SIGUSR1 show them: the
/// device's drops, its I/O's counters (received packets are counted there
/// only) and its peer's. Plain integers bumped on the data path, rendered
/// as text only here.
public struct Stats {
    public var dropped = DropCounters()
    public var device = DeviceCounters()
    public var peer = PeerCounters()
    /// Tun offloads: "off", "tcp" or "tcp udp" (which super-packets the tun takes).
    public var offload = "off"
    /// "tun" (IP packets) or "tap" (Ethernet frames, `--tap`).
    public var mode = "tun"

    public init() {}

    /// `name: value` lines, stable names (tests and scripts read them).
    public func render(interface: String, suite: String, peer address: String, peerSession: UInt64?,
                       ownSession: UInt64, derivations: UInt64, nowMonotonicMs: UInt64,
                       logLinesDropped: UInt64) -> String {
        var lines: [(String, String)] = [
            ("interface", interface),
            // This end's suite: what a peer's wrong-suite drops are measured against.
            ("cipher", suite),
            // Both ends must run the same: what wrong-mode drops are measured against.
            ("mode", mode),
            ("peer", address),
            ("last-authenticated", peer.lastAuthenticatedMs.map {
                let ms = nowMonotonicMs &- $0
                return "\(ms / 1000).\(ms % 1000 / 100) s ago"
            } ?? "never"),
            ("own-session", String(ownSession)),
            ("peer-session", peerSession.map { String($0) } ?? "none"),
            ("tx-packets", String(peer.txPackets)),
            ("tx-bytes", String(peer.txBytes)),
            ("rx-packets", String(device.packets)),
            ("rx-bytes", String(device.bytes)),
            ("keepalives-sent", String(peer.keepalivesSent)),
            ("keepalives-received", String(peer.keepalivesReceived)),
            ("peer-changes", String(peer.addressChanges)),
        ]
        for r in DropReason.allCases {
            lines.append(("drop-\(r.name)", String(dropped.dropped(r))))
        }
        lines += [
            ("no-peer", String(dropped.noPeer)),
            ("send-errors", String(peer.sendErrors)),
            ("tx-oversize", String(dropped.oversize)),
            ("tun-read-errors", String(device.readErrors)),
            ("tun-write-errors", String(device.failedPackets)),
            ("key-derivations", String(derivations)),
            ("offload", offload),
            ("tun-gso-reads", String(device.splitReads)),
            ("tun-gso-segments", String(device.splitSegments)),
            ("tun-gro-writes", String(device.mergedWrites)),
            ("tun-gro-packets", String(device.mergedPackets)),
            ("tun-offload-errors", String(device.offloadErrors)),
            // Not a data-path counter: log lines this process could not get out.
            ("log-lines-dropped", String(logLinesDropped)),
        ]
        return lines.map { "\($0.0): \($0.1)\n" }.joined()
    }
}
