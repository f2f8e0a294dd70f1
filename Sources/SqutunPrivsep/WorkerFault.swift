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

    /// The helper's side: the variable, if set, for the worker's environment.
    package static func passThrough() -> [String] {
        #if DEBUG
        if let value = getenv(variable) { return ["\(variable)=\(String(cString: value))"] }
        #endif
        return []
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
            Log.error("unknown \(variable)")
        }
    }
    #endif
}
