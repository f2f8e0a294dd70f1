import Shared
import SqutunSystem
import Glibc
import CShim

/// Test-only: a worker that misbehaves on purpose, so that the end-to-end
/// tests can show what the root helper does with a broken or compromised
/// worker (Tests/e2e/t_supervise.sh). Compiled into debug builds only (the
/// ones the test suite runs); a release build, such as the Debian package,
/// has neither the variable nor the code, so it is no attack surface there.
/// The helper passes SQUTUN_DEBUG_WORKER_FAULT through to its worker (whose
/// environment is otherwise fixed); the worker acts on it right after
/// `ready`, under its seccomp filter, as a compromised worker would (or,
/// for a setup fault, right after its first request was answered).
package enum WorkerFault {
    package static let variable = "SQUTUN_DEBUG_WORKER_FAULT"
    /// Test-only too: a library the worker is started with (LD_PRELOAD),
    /// such as the allocation counter of Tests/tools/alloccount, whose
    /// report goes to the file ALLOCCOUNT_LOG names (the worker's stderr
    /// is /dev/null).
    package static let preloadVariable = "SQUTUN_DEBUG_WORKER_PRELOAD"

    /// The helper's side: the variables, if set, for the worker's environment.
    package static func passThrough() -> [String] {
        #if DEBUG
        var environment: [String] = []
        if let value = getenv(variable) { environment.append("\(variable)=\(String(cString: value))") }
        if let library = getenv(preloadVariable) {
            environment.append("LD_PRELOAD=\(String(cString: library))")
            if let log = getenv("ALLOCCOUNT_LOG") { environment.append("ALLOCCOUNT_LOG=\(String(cString: log))") }
        }
        return environment
        #else
        return []
        #endif
    }

    #if DEBUG
    private static var value: String? { getenv(variable).map { String(cString: $0) } }

    /// The worker's side, during setup (after `config` arrived).
    ///  - hello-twice: a second `hello` request, which the table allows once.
    package static func duringSetup(channel: borrowing Channel) {
        if value == "hello-twice" { try? channel.send(.hello(version: ChannelCodec.monitorVersion)) }
    }

    /// The worker's side, after `ready`.
    ///  - bad-byte: one 0xff byte on the channel, then carry on.
    ///  - hang-up: close the channel, then hang without exiting.
    ///  - log-escapes: a log line full of terminal escapes, controls and bidi
    ///    overrides, then carry on.
    ///  - key-again: a `keyRequest`, which the table allows during setup only.
    package static func act(channel: borrowing Channel) {
        guard let value else { return }
        switch value {
        case "bad-byte":
            var byte: UInt8 = 0xff
            _ = squtun_send_fds(channel.fd.rawValue, &byte, 1, nil, 0, 0)
        case "hang-up":
            // Not the owner's close(): this never returns, so nothing
            // closes the number again.
            channel.fd.close()
            while true { _ = poll(nil, 0, -1) }
        case "key-again":
            try? channel.send(.keyRequest)
        case "hello-twice":
            break
        case "log-escapes":
            Log.notice("escapes: \u{1b}]0;owned\u{07}\u{1b}[2J\u{1b}[31mred\r\nforged line\u{7f}\u{9b}31m \u{202e}desrever\u{2066}x\u{2069} end")
        default:
            if serverFaults.isEmpty { Log.error("unknown \(variable)") }
        }
    }

    /// A server's worker misbehaving toward the helper's client table
    /// (Tests/e2e/t_server_isolation.sh); several may be given, separated
    /// by commas:
    ///  - tun-unknown-key: right after `ready`, a `clientTunRequest` for a
    ///    random key id (no file in the peers directory has it);
    ///  - tun-again: on each `clientTun`, at once another request for the
    ///    same client (which has a tun now);
    ///  - tun-flood: on each `clientKey`, at once a request for that
    ///    client, authenticated or not (every client of the directory, as
    ///    fast as the channel carries them);
    ///  - keep-socket: each client's own socket is kept aside, never
    ///    closed (the client is served by the shared socket), while the
    ///    worker says it closed the client's tun and socket as usual.
    private static var serverFaults: [Substring] {
        (value ?? "").split(separator: ",").filter {
            ["tun-unknown-key", "tun-again", "tun-flood", "keep-socket"].contains($0)
        }
    }

    nonisolated(unsafe) private static var keptSockets: [FileDescriptor] = []

    /// keep-socket: the socket that came with a client's tun, kept (the
    /// data path gets -1 instead, which it cannot use); else `socket`.
    package static func socketForDataPath(_ socket: FileDescriptor?) -> FileDescriptor? {
        guard let socket, serverFaults.contains("keep-socket") else { return socket }
        keptSockets.append(socket)
        Log.notice("fault: keeping a client's socket (\(keptSockets.count) kept)")
        return FileDescriptor(rawValue: -1)
    }

    /// Where a compromised worker claims its clients are.
    private static var claimedAddress: SocketAddress {
        SocketAddress(ipv4: in_addr(s_addr: UInt32(0xc000_0201).bigEndian), port: 9)  // 192.0.2.1:9
    }

    /// The server worker's side, after `ready`.
    package static func actServer(port: Channel.Port) {
        guard serverFaults.contains("tun-unknown-key") else { return }
        var keyId: UInt32 = 0
        while keyId == 0 { _ = squtun_getrandom(&keyId, MemoryLayout<UInt32>.size) }
        Log.notice("fault: asking for a tun for key id \(keyId)")
        try? port.send(.clientTunRequest(keyId: keyId, address: claimedAddress))
    }

    /// The server worker's side, for each message the helper sent (before
    /// the worker acts on it).
    package static func received(_ message: ChannelMessage, port: Channel.Port) {
        let faults = serverFaults
        guard !faults.isEmpty else { return }
        switch message {
        case let .clientKey(keyId, _, _) where faults.contains("tun-flood"),
             let .clientTun(keyId, _, _, _) where faults.contains("tun-again"):
            try? port.send(.clientTunRequest(keyId: keyId, address: claimedAddress))
        default:
            break
        }
    }
    #endif
}
