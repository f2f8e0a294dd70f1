/// The failures of privilege separation itself (everything the system
/// says goes through `SystemError`). Each renders as one line.
package enum PrivsepError: Error, CustomStringConvertible {
    /// The helper: the worker did not come up; why, as it said or as its end showed.
    case workerFailed(String)
    /// The worker: the helper sent something other than the message due next.
    case unexpectedMessage(String)
    /// The setup: the settings name more peers than the data path runs.
    case tooManyPeers(count: Int, limit: Int)

    package var description: String {
        switch self {
        case .workerFailed(let why): why
        case .unexpectedMessage(let wanted): "worker: expected the \(wanted) message from the helper"
        case let .tooManyPeers(count, limit): "\(count) peers configured; a tunnel runs at most \(limit)"
        }
    }
}
