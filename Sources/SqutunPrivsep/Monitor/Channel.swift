import Shared
import SqutunSystem
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// One end of the helper<->worker channel: an AF_UNIX SOCK_SEQPACKET
/// socket, so each send is one message with its boundaries kept, and fds
/// ride along as SCM_RIGHTS (CShim's `squtun_send_fds`/`squtun_recv_fds`).
/// Blocking unless the owner sets O_NONBLOCK.
///
/// It owns its socket: not copyable, closed exactly once, by `close()`
/// (which consumes it) or when the owner goes away. `fd` is a view for
/// poll(2) and for Spawn's mapping; it is not for closing.
package struct Channel: ~Copyable {
    private let owned: OwnedDescriptor
    package var fd: FileDescriptor { owned.fd }

    /// Where the worker finds its end (Spawn dup2s it there).
    package static let workerFD = FileDescriptor(rawValue: 3)

    /// Takes ownership of an open channel socket (the worker's fd 3).
    package init(adopting fd: FileDescriptor) { owned = OwnedDescriptor(fd) }

    package consuming func close() { owned.close() }

    /// Both ends of a new channel. (Frozen so that code in other modules,
    /// the tests, may take the two ends apart: `let a = pair.helper`.)
    @frozen package struct Pair: ~Copyable {
        package var helper: Channel
        package var worker: Channel
    }

    /// Both ends, close-on-exec. The helper keeps `helper` and hands
    /// `worker` to Spawn, then closes its copy of `worker`.
    package static func makePair() throws(PrivsepError) -> Pair {
        var pair: [Int32] = [-1, -1]
        let type = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &pair) == 0 else {
            throw .channelIO(operation: "socketpair", errno: .current)
        }
        return Pair(helper: Channel(adopting: FileDescriptor(rawValue: pair[0])),
                    worker: Channel(adopting: FileDescriptor(rawValue: pair[1])))
    }

    /// Sends one message (and its fds). The encode buffer is wiped
    /// afterwards because it may hold the key. A dead peer gives EPIPE
    /// (MSG_NOSIGNAL), not SIGPIPE. With `wait: false` a full socket
    /// buffer gives EAGAIN (`.channelIO`) instead of blocking.
    package func send(_ message: ChannelMessage, wait: Bool = true) throws(PrivsepError) {
        try Self.send(message, on: fd, wait: wait)
    }

    /// Sends without blocking for longer than `limitMs` in all: while the
    /// socket buffer is full it waits for room (the other side reading),
    /// then gives up with the EAGAIN. For many messages at once (a
    /// server's clients) to a worker that reads them, without letting one
    /// that stopped reading hold the helper.
    package func send(_ message: ChannelMessage, waitingAtMostMs limitMs: Int32) throws(PrivsepError) {
        let deadline = MonotonicClock.nowMs() + UInt64(max(0, limitMs))
        while true {
            do throws(PrivsepError) {
                return try Self.send(message, on: fd, wait: false)
            } catch .channelIO(let operation, let errno) where errno.rawValue == EAGAIN {
                let now = MonotonicClock.nowMs()
                guard now < deadline else { throw .channelIO(operation: operation, errno: errno) }
                var p = pollfd(fd: fd.rawValue, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, Int32(deadline - now))
            }
        }
    }

    fileprivate static func send(_ message: ChannelMessage, on fd: FileDescriptor, wait: Bool) throws(PrivsepError) {
        let fds = message.fileDescriptors.map(\.rawValue)
        let result: Result<Void, PrivsepError> = withUnsafeTemporaryAllocation(byteCount: ChannelCodec.maxMessageBytes, alignment: 8) { buffer in
            defer { squtun_wipe(buffer.baseAddress, buffer.count) }
            let count: Int
            do throws(ChannelFault) {
                count = try ChannelCodec.encode(message, into: buffer)
            } catch {
                return .failure(.channelMessage(error))
            }
            do throws(Errno) {
                _ = try fds.withUnsafeBufferPointer { fdBuffer throws(Errno) in
                    try retryingEINTR { squtun_send_fds(fd.rawValue, buffer.baseAddress, count, fdBuffer.baseAddress, Int32(fdBuffer.count), wait ? 0 : 1) }
                }
                return .success(())
            } catch {
                return .failure(.channelIO(operation: "sendmsg", errno: error))
            }
        }
        try result.get()
    }

    /// Receives one message sent by `sender`. Throws `.channelClosed` when
    /// the other side has exited, `.channelMessage` for anything malformed
    /// (after closing any fds that came with it). The caller should exit on
    /// either. EAGAIN (non-blocking, nothing queued) is `.channelIO`.
    package func receive(from sender: ChannelSender) throws(PrivsepError) -> ChannelMessage {
        try Self.receive(from: sender, on: fd)
    }

    fileprivate static func receive(from sender: ChannelSender, on fd: FileDescriptor) throws(PrivsepError) -> ChannelMessage {
        // One byte more than the largest message, so an oversized one shows as MSG_TRUNC.
        let size = ChannelCodec.maxMessageBytes + 1
        let outcome: Result<ChannelMessage, PrivsepError> = withUnsafeTemporaryAllocation(byteCount: size, alignment: 8) { buffer in
            defer { squtun_wipe(buffer.baseAddress, buffer.count) }
            return withUnsafeTemporaryAllocation(of: Int32.self, capacity: Int(SQUTUN_MAX_FDS)) { fds in
                var count: Int32 = 0
                var flags: Int32 = 0
                let n: Int
                do throws(Errno) {
                    n = try retryingEINTR {
                        squtun_recv_fds(fd.rawValue, buffer.baseAddress, buffer.count, fds.baseAddress, Int32(fds.count), &count, &flags)
                    }
                } catch {
                    return .failure(.channelIO(operation: "recvmsg", errno: error))
                }
                let held = UnsafeBufferPointer(rebasing: fds[0..<min(Int(count), fds.count)])
                func reject(_ fault: ChannelFault) -> Result<ChannelMessage, PrivsepError> {
                    for raw in held { FileDescriptor(rawValue: raw).close() }
                    return .failure(.channelMessage(fault))
                }
                // A zero-length read is end-of-stream: no valid message is empty.
                if n == 0 && count == 0 { return .failure(.channelClosed) }
                if flags & Int32(MSG_TRUNC) != 0 || flags & Int32(MSG_CTRUNC) != 0 {
                    return reject(.truncated)
                }
                do throws(ChannelFault) {
                    let message = try ChannelCodec.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<n]),
                                                          fdCount: Int(count), fds: held)
                    guard message.type.sender == sender else { throw .wrongSender(type: message.type) }
                    return .success(message)
                } catch {
                    return reject(error)
                }
            }
        }
        return try outcome.get()
    }

    /// A worker log line; see `LogPort.sendLog`.
    package func sendLog(level: Int32, text: String) throws(PrivsepError) {
        try logPort.sendLog(level: level, text: text)
    }

    /// What the log sink keeps of the worker's end: it can send log lines
    /// and nothing else (no close). Valid while this channel is: in the
    /// worker, whose channel lives until the process exits.
    package var logPort: LogPort { LogPort(fd: fd) }

    /// A server worker's view of its end for the data path's loop: send
    /// and receive, no close. Valid while this channel is (the worker's
    /// lives until the process exits).
    package var port: Port { Port(fd: fd) }

    package struct Port {
        package let fd: FileDescriptor

        package func send(_ message: ChannelMessage, wait: Bool = false) throws(PrivsepError) {
            try Channel.send(message, on: fd, wait: wait)
        }

        package func receive(from sender: ChannelSender) throws(PrivsepError) -> ChannelMessage {
            try Channel.receive(from: sender, on: fd)
        }
    }

    package struct LogPort: Sendable {
        fileprivate let fd: FileDescriptor

        /// A log line (`level` is a syslog priority such as LOG_INFO).
        /// Never blocks: with the helper not reading, it throws (EAGAIN)
        /// and the line is lost, but the data path goes on.
        package func sendLog(level: Int32, text: String) throws(PrivsepError) {
            try Channel.send(.log(level: LogLevel(syslog: level), text: text.isEmpty ? "(empty log message)" : text),
                             on: fd, wait: false)
        }
    }
}
