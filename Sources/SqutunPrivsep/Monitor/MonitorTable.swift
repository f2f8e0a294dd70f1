import Shared
import SqutunSystem

// The monitor: what the worker may ask the root helper, and when. The
// worker is treated as hostile: every request is checked against `table`
// (a message the table does not allow now is refused, and a refusal gets
// the worker killed); what a request may carry is checked by the codec
// before it gets here.

/// Where the worker is. `setup` until it says `ready`; then `running`.
package enum MonitorPhase: Sendable, CustomStringConvertible {
    case setup, running

    package var description: String { self == .setup ? "during setup" : "after ready" }
}

/// What the helper holds for the worker until it asks: the configuration,
/// the key, the descriptors. Handed out once each; what was not asked for
/// when setup ends is released (`release`): the helper keeps nothing of
/// the data path.
package struct WorkerProvisions {
    package var config: WorkerConfig
    package var key: SecretBytes?
    package var fds: [PassedFD]
    /// A server's clients and their tuns (the helper's, for the worker's
    /// requests about them).
    package var server: ServerMonitor?

    package init(config: WorkerConfig, key: SecretBytes?, fds: [PassedFD], server: ServerMonitor? = nil) {
        self.config = config
        self.key = key
        self.fds = fds
        self.server = server
    }

    /// Wipes the key and closes the descriptors not handed over.
    package mutating func release() {
        releaseKey()
        releaseFDs()
    }

    mutating func releaseKey() {
        key?.wipe()
        key = nil
    }

    mutating func releaseFDs() {
        fds.closeAll()
        fds = []
    }
}

/// What the helper does with a request once its handler ran.
package enum MonitorOutcome: Equatable {
    /// An answer went back to the worker.
    case answered
    /// The worker finished setup: the phase becomes `running`.
    case ready
    /// A line for the helper's log.
    case log(LogLevel, String)
    /// Refused: the worker gets killed.
    case refused(MonitorRefusal)
}

/// Why a request was refused. Each renders as part of one log line.
package enum MonitorRefusal: Equatable, Sendable, CustomStringConvertible {
    /// A type the worker never sends (the helper's own answers).
    case notARequest(ChannelMessageType)
    case wrongPhase(ChannelMessageType, MonitorPhase)
    /// A request allowed once, again.
    case repeated(ChannelMessageType)
    /// A request before one that must come first.
    case outOfOrder(ChannelMessageType, before: ChannelMessageType)
    /// Well-formed, but not acceptable (its handler says why).
    case rejected(ChannelMessageType, String)

    package var description: String {
        switch self {
        case let .notARequest(type): "a \(type) message, which is not a request"
        case let .wrongPhase(type, phase): "a \(type) request \(phase)"
        case let .repeated(type): "a second \(type) request"
        case let .outOfOrder(type, first): "a \(type) request before the \(first) request"
        case let .rejected(type, why): "\(type) request: \(why)"
        }
    }
}

/// One row of the table.
package struct MonitorEntry: Sendable {
    package typealias Handler = @Sendable (ChannelMessage, inout WorkerProvisions, borrowing Channel) throws(PrivsepError) -> MonitorOutcome

    package let request: ChannelMessageType
    /// The phases in which it may come.
    package let phases: Set<MonitorPhase>
    /// At most once in the worker's life.
    package let once: Bool
    /// Requests that must have been served before it.
    package let after: [ChannelMessageType]
    package let handle: Handler

    package init(_ request: ChannelMessageType, phases: Set<MonitorPhase>, once: Bool,
                 after: [ChannelMessageType] = [], handle: @escaping Handler) {
        self.request = request
        self.phases = phases
        self.once = once
        self.after = after
        self.handle = handle
    }
}

/// The helper's side of the monitor: the table, the phase, and which
/// requests have been served.
package struct Monitor {
    /// Every request the worker may make: the one place that says so.
    /// A new request (e.g. a tun for a newly authenticated client) is a
    /// new message type (ChannelMessage.swift) and a row here, with the
    /// phases it may come in, whether once, and its handler.
    package static let table: [MonitorEntry] = [
        MonitorEntry(.hello, phases: [.setup], once: true, handle: answerHello),
        MonitorEntry(.keyRequest, phases: [.setup], once: true, after: [.hello], handle: answerKey),
        MonitorEntry(.fdsRequest, phases: [.setup], once: true, after: [.hello], handle: answerFDs),
        MonitorEntry(.ready, phases: [.setup], once: true, after: [.hello, .keyRequest, .fdsRequest],
                     handle: { _, _, _ throws(PrivsepError) in .ready }),
        // The worker's rate limit bounds these (Log.swift, LogLimiter).
        MonitorEntry(.log, phases: [.setup, .running], once: false, handle: { message, _, _ throws(PrivsepError) in
            guard case let .log(level, text) = message else { return .refused(.notARequest(message.type)) }
            return .log(level, text)
        }),
    ]

    /// A server's worker: no tunnel key (its clients' keys come after
    /// `ready`, one `clientKey` each), no tun at setup; once running, a tun
    /// for an authenticated client (ServerMonitor checks the client, the
    /// count and the rate) and word of a tun it closed.
    package static let serverTable: [MonitorEntry] = [
        MonitorEntry(.hello, phases: [.setup], once: true, handle: answerHello),
        MonitorEntry(.fdsRequest, phases: [.setup], once: true, after: [.hello], handle: answerFDs),
        MonitorEntry(.ready, phases: [.setup], once: true, after: [.hello, .fdsRequest],
                     handle: { _, _, _ throws(PrivsepError) in .ready }),
        MonitorEntry(.log, phases: [.setup, .running], once: false, handle: { message, _, _ throws(PrivsepError) in
            guard case let .log(level, text) = message else { return .refused(.notARequest(message.type)) }
            return .log(level, text)
        }),
        MonitorEntry(.clientTunRequest, phases: [.running], once: false, handle: { message, provisions, channel throws(PrivsepError) in
            guard case let .clientTunRequest(keyId, address) = message, let server = provisions.server else {
                return .refused(.notARequest(message.type))
            }
            return try server.tunRequest(keyId: keyId, address: address, on: channel)
        }),
        MonitorEntry(.clientClosed, phases: [.running], once: false, handle: { message, provisions, _ throws(PrivsepError) in
            guard case let .clientClosed(keyId, reason) = message, let server = provisions.server else {
                return .refused(.notARequest(message.type))
            }
            return server.closed(keyId: keyId, reason: reason)
        }),
    ]

    package let table: [MonitorEntry]
    package private(set) var phase: MonitorPhase = .setup
    private var served: Set<ChannelMessageType> = []

    package init(table: [MonitorEntry] = Monitor.table) {
        self.table = table
    }

    /// The entry that serves `type` now, or why not. Checked in this
    /// order: in the table, allowed in this phase, not a second one of a
    /// once-request, not before a request it needs first.
    private func admit(_ type: ChannelMessageType) -> Admission {
        guard let entry = table.first(where: { $0.request == type }) else { return .refuse(.notARequest(type)) }
        guard entry.phases.contains(phase) else { return .refuse(.wrongPhase(type, phase)) }
        if entry.once && served.contains(type) { return .refuse(.repeated(type)) }
        if let missing = entry.after.first(where: { !served.contains($0) }) {
            return .refuse(.outOfOrder(type, before: missing))
        }
        return .serve(entry)
    }

    private enum Admission {
        case serve(MonitorEntry)
        case refuse(MonitorRefusal)
    }

    /// Checks and serves one request. Throws only when an answer cannot be
    /// sent; everything the worker got wrong is a `.refused` outcome.
    package mutating func dispatch(_ message: ChannelMessage, provisions: inout WorkerProvisions,
                                   channel: borrowing Channel) throws(PrivsepError) -> MonitorOutcome {
        let entry: MonitorEntry
        switch admit(message.type) {
        case .serve(let found): entry = found
        case .refuse(let refusal): return .refused(refusal)
        }
        let outcome = try entry.handle(message, &provisions, channel)
        switch outcome {
        case .refused: break
        case .ready: served.insert(message.type); phase = .running
        case .answered, .log: served.insert(message.type)
        }
        return outcome
    }

    // MARK: Handlers

    private static func answerHello(_ message: ChannelMessage, _ provisions: inout WorkerProvisions,
                                    _ channel: borrowing Channel) throws(PrivsepError) -> MonitorOutcome {
        guard case let .hello(version) = message else { return .refused(.notARequest(message.type)) }
        guard version == ChannelCodec.monitorVersion else {
            return .refused(.rejected(.hello, "the worker speaks monitor version \(version), this helper \(ChannelCodec.monitorVersion)"))
        }
        try answer(.config(provisions.config), on: channel)
        return .answered
    }

    private static func answerKey(_ message: ChannelMessage, _ provisions: inout WorkerProvisions,
                                  _ channel: borrowing Channel) throws(PrivsepError) -> MonitorOutcome {
        guard let key = provisions.key else { return .refused(.rejected(.keyRequest, "no key to give")) }
        try answer(.key(key), on: channel)
        provisions.releaseKey()
        return .answered
    }

    private static func answerFDs(_ message: ChannelMessage, _ provisions: inout WorkerProvisions,
                                  _ channel: borrowing Channel) throws(PrivsepError) -> MonitorOutcome {
        try answer(.fds(provisions.fds), on: channel)
        // The worker has its own copies now.
        provisions.releaseFDs()
        return .answered
    }

    /// Answers never block the helper: a worker that does not read them
    /// fills its socket buffer and gets EAGAIN, i.e. killed.
    private static func answer(_ message: ChannelMessage, on channel: borrowing Channel) throws(PrivsepError) {
        try channel.send(message, wait: false)
    }
}
