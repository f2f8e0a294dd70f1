import SqutunSystem
import Shared

/// The one line said (once a run) about the first datagram of a peer that
/// cannot be understood at all: an older protocol, another suite or mode,
/// naming both ends' choice. The other drop reasons are counted only.
enum DropNotice {
    /// The drop reasons said once; the others start out as said.
    static let saidOnce: UInt64 = [DropReason.oldVersion, .wrongSuite, .wrongMode]
        .reduce(0) { $0 | 1 << UInt64($1.rawValue) }

    static func line(_ reason: DropReason, packet: UnsafeRawBufferPointer, from: SocketAddress, suite: UInt8) -> String {
        let what: String
        switch reason {
        case .oldVersion:
            what = "peer speaks protocol v1 (an older squtun); this end speaks v2: upgrade the peer"
        case .wrongSuite:
            what = "peer uses \(SuiteID.describe(packet[Wire.offsetSuite])), this end \(SuiteID.describe(suite))"
        case .wrongMode:
            what = packet[Wire.offsetFlags] & Wire.flagEthernet != 0
                ? "peer sends Ethernet frames (TAP mode), this end IP packets (TUN mode)"
                : "peer sends IP packets (TUN mode), this end Ethernet frames (TAP mode)"
        default:
            what = "peer's datagram dropped"
        }
        return what + " (datagrams from \(from) dropped as \(reason.name); said once)"
    }
}

/// The datagram slots of a device: one batch per direction, big enough for
/// the largest datagram. Received slots fill up to 64 KiB each with UDP
/// GRO (a slot holds up to 64 coalesced datagrams), so 16 of them take up
/// to ~1000 datagrams per call while keeping the resident set 3 MiB below
/// 64 slots'. Devices of one thread may share one set.
public final class DeviceBatches {
    let tx = DatagramBatch()
    let rx = DatagramBatch(capacity: 16)

    public init() {}
}
