import SqutunSystem
import Glibc
import Shared

/// The worker's counters: plain integers bumped on the data path, rendered
/// as text only for `squtun status` and SIGUSR1.
public struct Stats {
    /// tun → UDP: datagrams and payload bytes sealed and sent.
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    /// UDP → tun: authenticated data payloads written to the tun.
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var keepalivesSent: UInt64 = 0
    public var keepalivesReceived: UInt64 = 0
    /// Received datagrams dropped, by PROTOCOL.md reason.
    public var drops = [UInt64](repeating: 0, count: DropReason.allCases.count)
    /// Local trouble, not the peer's: nothing to send to yet, send/write failures.
    public var noPeer: UInt64 = 0
    public var sendErrors: UInt64 = 0
    /// tun packets longer than the largest payload (Wire.maxPayloadLength):
    /// no datagram can carry them (the tun's MTU is too high).
    public var oversize: UInt64 = 0
    public var tunWriteErrors: UInt64 = 0
    public var tunReadErrors: UInt64 = 0
    public var peerChanges: UInt64 = 0
    /// Tun offloads: "off", "tcp" or "tcp udp" (which super-packets the tun
    /// takes); super-packets read and the packets cut from them; merged
    /// super-packets written and the packets in them; reads whose virtio
    /// header made no sense.
    public var offload = "off"
    public var gsoReads: UInt64 = 0
    public var gsoSegments: UInt64 = 0
    public var groWrites: UInt64 = 0
    public var groPackets: UInt64 = 0
    public var offloadErrors: UInt64 = 0
    /// CLOCK_MONOTONIC ms of the last datagram that passed every check.
    public var lastAuthenticatedMs: UInt64?

    @inline(__always)
    public mutating func drop(_ r: DropReason) { drops[r.rawValue] &+= 1 }

    /// `name: value` lines, stable names (tests and scripts read them).
    public func render(interface: String, peer: String, peerSession: UInt64?, ownSession: UInt64,
                derivations: UInt64, nowMonotonicMs: UInt64, logLinesDropped: UInt64) -> String {
        var lines: [(String, String)] = [
            ("interface", interface),
            ("peer", peer),
            ("last-authenticated", lastAuthenticatedMs.map {
                let ms = nowMonotonicMs &- $0
                return "\(ms / 1000).\(ms % 1000 / 100) s ago"
            } ?? "never"),
            ("own-session", String(ownSession)),
            ("peer-session", peerSession.map { String($0) } ?? "none"),
            ("tx-packets", String(txPackets)),
            ("tx-bytes", String(txBytes)),
            ("rx-packets", String(rxPackets)),
            ("rx-bytes", String(rxBytes)),
            ("keepalives-sent", String(keepalivesSent)),
            ("keepalives-received", String(keepalivesReceived)),
            ("peer-changes", String(peerChanges)),
        ]
        for r in DropReason.allCases {
            lines.append(("drop-\(r.name)", String(drops[r.rawValue])))
        }
        lines += [
            ("no-peer", String(noPeer)),
            ("send-errors", String(sendErrors)),
            ("tx-oversize", String(oversize)),
            ("tun-read-errors", String(tunReadErrors)),
            ("tun-write-errors", String(tunWriteErrors)),
            ("key-derivations", String(derivations)),
            ("offload", offload),
            ("tun-gso-reads", String(gsoReads)),
            ("tun-gso-segments", String(gsoSegments)),
            ("tun-gro-writes", String(groWrites)),
            ("tun-gro-packets", String(groPackets)),
            ("tun-offload-errors", String(offloadErrors)),
            // Not a data-path counter: log lines this process could not get out.
            ("log-lines-dropped", String(logLinesDropped)),
        ]
        return lines.map { "\($0.0): \($0.1)\n" }.joined()
    }
}
