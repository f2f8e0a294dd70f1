import SqutunSystem
import Shared

// `squtun status` of a server: the server's own lines, then one block per
// client (a blank line before each), each the lines a point-to-point end
// shows for its peer. `squtun status --json` turns the same text into one
// object (StatusJSON.swift), so both come from one rendering.

extension Server {
    public func statusText(logLinesDropped: UInt64) -> String {
        let now = clock.monotonicMs()
        var tuns = 0
        for slot in 0..<clients.count where clients[slot]?.device.io.hasTun == true { tuns += 1 }
        var text = "mode: server\n"
            + "cipher: \(SuiteID.describe(Cipher.Suite.id))\n"
            + "clients-authorized: \(clientCount)\n"
            + "client-tuns: \(tuns)\n"
        for r in DropReason.allCases { text += "drop-\(r.name): \(counters.dropped(r))\n" }
        text += "log-lines-dropped: \(logLinesDropped)\n"
        for slot in 0..<clients.count {
            guard let client = clients[slot] else { continue }
            let peer = client.peer
            let device = client.device
            text += "\nclient: \(client.name)\n"
                + "key-id: \(client.keyId)\n"
                + device.stats().render(interface: device.io.interface ?? "none",
                                        suite: SuiteID.describe(Cipher.Suite.id),
                                        peer: peer.address.map { "\($0)" } ?? "none",
                                        peerSession: peer.opener.peerSession, ownSession: peer.sealer.session,
                                        derivations: peer.opener.derivations, nowMonotonicMs: now,
                                        logLinesDropped: logLinesDropped)
                + "no-tun: \(device.io.noTun)\n"
        }
        return text
    }
}
