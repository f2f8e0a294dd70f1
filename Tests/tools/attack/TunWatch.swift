import Glibc

/// tunwatch --iface tun0 --state FILE [--log FILE] [--pattern HEX] [--seconds MAX]
///          [--tunnel-net 10.77.0.0] [--tap]
///
/// The suite's independent witness of what reaches a tun device: an
/// AF_PACKET socket on the interface sees every packet squtun writes into
/// it (the kernel's "incoming" direction; packets the kernel sends out to
/// squtun are PACKET_OUTGOING: the socket asks not to get them at all, and
/// ignores any it gets). Each incoming packet is one of
///
///  - live:       an ICMP echo request/reply whose data is the live traffic's
///                ping pattern (`ping -p HEX`), the first time its
///                (type, source, destination, id, sequence) is seen;
///  - dup:        such a packet seen a second time: a replay that got through;
///  - live-other: TCP/UDP to or from port 5201 inside the tunnel network (iperf3);
///  - foreign:    anything else: forged or tampered data that got through.
///
/// With --tap the interface is a TAP device: the socket is SOCK_RAW and
/// sees each frame whole, its 14-byte Ethernet header first (SOCK_DGRAM
/// would strip it and hide what the frame claimed to be). An IPv4 frame
/// (EtherType 0x0800) is classified by its packet as above; an ARP frame
/// (0x0806) between two tunnel addresses whose sender hardware address is
/// the frame's source is live-other (the two ends resolving each other);
/// any other frame, or one shorter than its header, is foreign.
///
/// FILE is rewritten (atomically, rename) at most every 50 ms while counts
/// change, as one line: seen=N live=N live-other=N foreign=N dup=N
/// socket-drops=N. Foreign and dup packets are logged in hex to --log.
/// Ends after --seconds, or when the interface goes away.
func tunwatchCommand(_ a: Args) throws(AttackError) {
    let iface = try a.string("iface")
    let statePath = try a.string("state")
    let logPath = a.string("log", default: "")
    guard let pattern = parseHex(a.string("pattern", default: "4c495645")), !pattern.isEmpty else {
        throw .usage("--pattern: hex bytes")
    }
    let seconds = try a.double("seconds", default: 3600)
    guard let net = Endpoint.parseAddress(a.string("tunnel-net", default: "10.77.0.0")) else {
        throw .usage("--tunnel-net: an IPv4 address")
    }
    let tap = a.flag("tap")
    let sock = try PacketSocket(interface: iface, linkLayer: tap, incomingOnly: true)
    let logFD: Int32 = logPath.isEmpty ? -1 : open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    defer { if logFD >= 0 { close(logFD) } }

    var seen = 0, live = 0, liveOther = 0, foreign = 0, dup = 0
    var socketDrops: UInt64 = 0
    var keys = Set<UInt64>()
    var logged = 0
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 70000, alignment: 16)
    defer { buffer.deallocate() }

    func writeState(_ extra: String = "") {
        socketDrops += UInt64(sock.drops())
        let line = "seen=\(seen) live=\(live) live-other=\(liveOther) foreign=\(foreign) dup=\(dup) socket-drops=\(socketDrops)\(extra)\n"
        let tmp = statePath + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        var l = line
        l.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        close(fd)
        rename(tmp, statePath)
    }

    func record(_ what: String, _ p: UnsafeRawBufferPointer) {
        guard logFD >= 0, logged < 200 else { return }
        logged += 1
        var l = "\(what) len=\(p.count) \(hex(p.prefix(96)))\n"
        l.withUTF8 { _ = write(logFD, $0.baseAddress, $0.count) }
    }

    func inTunnel(_ addr: UInt32) -> Bool { addr & 0xffff_ff00 == net & 0xffff_ff00 }

    /// The echo's key if `p` is live-pattern ICMP echo traffic.
    func echoKey(_ p: UnsafeRawBufferPointer) -> UInt64? {
        guard p.count >= 28, p[0] >> 4 == 4, p[9] == 1, let b = p.baseAddress else { return nil }
        let ihl = Int(p[0] & 15) * 4
        let total = min(Int(b.get16(2)), p.count)
        guard total >= ihl + 8 + 16 + pattern.count else { return nil }
        let type = p[ihl]
        guard (type == 8 || type == 0), p[ihl + 1] == 0 else { return nil }
        let data = ihl + 8
        for i in 16..<(total - data) where p[data + i] != pattern[i % pattern.count] { return nil }
        let src = b.get32(12), dst = b.get32(16)
        guard inTunnel(src), inTunnel(dst) else { return nil }
        return UInt64(type == 8 ? 1 : 0) << 56 | UInt64(src & 255) << 48 | UInt64(dst & 255) << 40
            | UInt64(b.get16(ihl + 4)) << 16 | UInt64(b.get16(ihl + 6))
    }

    /// An ARP request/reply (Ethernet, IPv4) between two tunnel addresses,
    /// its sender hardware address the frame's source: `p` is the frame.
    func isTunnelARP(_ p: UnsafeRawBufferPointer) -> Bool {
        guard p.count >= 14 + 28, let b = p.baseAddress, b.get16(12) == 0x0806 else { return false }
        let arp = b + 14
        guard arp.get16(0) == 1, arp.get16(2) == 0x0800, p[14 + 4] == 6, p[14 + 5] == 4,
              arp.get16(6) == 1 || arp.get16(6) == 2 else { return false }
        for i in 0..<6 where p[14 + 8 + i] != p[6 + i] { return false }
        return inTunnel(arp.get32(14)) && inTunnel(arp.get32(24))
    }

    func isIperf(_ p: UnsafeRawBufferPointer) -> Bool {
        guard p.count >= 24, p[0] >> 4 == 4, p[9] == 6 || p[9] == 17, let b = p.baseAddress else { return false }
        let ihl = Int(p[0] & 15) * 4
        guard p.count >= ihl + 4, inTunnel(b.get32(12)), inTunnel(b.get32(16)) else { return false }
        return b.get16(ihl) == 5201 || b.get16(ihl + 2) == 5201
    }

    writeState()
    let deadline = monoSeconds() + seconds
    var dirty = false
    var lastWrite = monoSeconds()
    loop: while monoSeconds() < deadline {
        switch sock.receive(into: buffer, timeoutMs: 50) {
        case .timeout:
            break
        case .gone(let why):
            writeState(" ended=\"\(why)\"")
            return
        case .packet(let length, let type):
            if type == PacketSocket.packetOutgoing { break }
            let frame = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
            seen += 1
            // In TAP mode the IP packet is behind the Ethernet header, if the EtherType says IPv4.
            let isIPv4 = !tap || (length >= 14 && frame.baseAddress!.get16(12) == 0x0800)
            let p = tap ? UnsafeRawBufferPointer(rebasing: frame[min(14, length)...]) : frame
            if !isIPv4 {
                if isTunnelARP(frame) { liveOther += 1 } else { foreign += 1; record("foreign", frame) }
            } else if let key = echoKey(p) {
                if keys.insert(key).inserted { live += 1 } else { dup += 1; record("dup", p) }
            } else if isIperf(p) {
                liveOther += 1
            } else {
                foreign += 1
                record("foreign", p)
            }
            dirty = true
        }
        let now = monoSeconds()
        if dirty && now - lastWrite >= 0.05 {
            writeState()
            dirty = false
            lastWrite = now
        }
    }
    writeState()
}
