/// The IP version carrying the tunnel's UDP datagrams.
public enum Underlay: Sendable, CaseIterable {
    case ipv4
    case ipv6

    /// IP header + UDP header, bytes (no IP options / extension headers).
    public var headerLength: Int {
        switch self {
        case .ipv4: return 20 + 8
        case .ipv6: return 40 + 8
        }
    }

    /// The smallest MTU the protocol lets a link have (RFC 791: 68, RFC 8200: 1280).
    /// The tun device carries packets of this version too, so it must get at least this.
    public var minimumMTU: Int {
        switch self {
        case .ipv4: return 68
        case .ipv6: return 1280
        }
    }

    public var name: String {
        switch self {
        case .ipv4: return "IPv4"
        case .ipv6: return "IPv6"
        }
    }
}

/// Tun MTU from link MTU: pure arithmetic on the cipher suite's datagram
/// layout (the default suite unless one is named).
public enum MTU {
    /// The largest link MTU `-m` accepts: IPv4's total-length field limit.
    public static let maxLinkMTU = 65535

    /// The largest payload whose sealed datagram is at most `datagramBytes`
    /// long, or nil if not even an empty payload fits.
    public static func largestPayload(fittingDatagram datagramBytes: Int, suite: SuiteID = .defaultSuite) -> Int? {
        suite.layout.largestPayload(fittingDatagram: datagramBytes)
    }

    /// The Ethernet header a TAP device's frames carry in front of the IP
    /// packet (destination, source, EtherType): part of every payload in
    /// TAP mode, not of the device's MTU.
    public static let ethernetHeaderLength = 14

    /// The largest tun MTU whose packets, sealed and wrapped in IP + UDP,
    /// fit a link of `linkMTU` bytes; nil if below the underlay's minimum MTU
    /// (the tun device could not carry every packet of that IP version).
    /// CBC, 1500: IPv4 1391, IPv6 1359; AEAD, 1500: IPv4 1424, IPv6 1404.
    /// With `tap`, the TAP device's MTU: its frames' Ethernet header counts
    /// against the payload, 14 bytes less in every case (CBC, 1500: IPv4
    /// 1377, IPv6 1345; AEAD: IPv4 1410, IPv6 1390).
    public static func tunMTU(linkMTU: Int, underlay: Underlay, suite: SuiteID = .defaultSuite,
                              tap: Bool = false) -> Int? {
        let link = tap ? ethernetHeaderLength : 0
        guard let m = largestPayload(fittingDatagram: linkMTU - underlay.headerLength, suite: suite),
              m - link >= underlay.minimumMTU else { return nil }
        return m - link
    }

    /// The smallest link MTU for which `tunMTU` is not nil (CBC: IPv4 188,
    /// IPv6 1424; AEAD: IPv4 144, IPv6 1376).
    public static func smallestLinkMTU(underlay: Underlay, suite: SuiteID = .defaultSuite, tap: Bool = false) -> Int {
        underlay.headerLength + suite.layout.packetLength(payload: underlay.minimumMTU + (tap ? ethernetHeaderLength : 0))
    }
}
