import SqutunSystem

/// The failures of privilege separation itself (everything the system
/// says goes through `SystemError`). Each renders as one line.
package enum PrivsepError: Error, Equatable, CustomStringConvertible {
    /// The helper: the worker did not come up; why, as it said or as its end showed.
    case workerFailed(String)
    /// The worker: the helper answered a request with another message.
    case unexpectedAnswer(request: ChannelMessageType, got: ChannelMessageType)
    /// The worker: the helper's `fds` answer lacks a descriptor it needs.
    case missingDescriptor(PassedFDRole)
    /// The worker: the device the helper passed is not of the config's
    /// mode (a TAP device for a TUN-mode config, or the other way round).
    case deviceModeMismatch(interface: String, tap: Bool)
    /// The setup: the settings name more peers than the data path runs.
    case tooManyPeers(count: Int, limit: Int)
    /// `--server` started by a user other than root.
    case serverNeedsRoot
    /// A server's root helper without CAP_NET_ADMIN: it could make no client tun.
    case serverNeedsNetAdmin
    /// `-k` of a keypair server is not a private key.
    case serverKeyNotPrivate(path: String)

    // The helper/worker channel (Channel.swift).
    case channelIO(operation: String, errno: Errno)
    case channelClosed
    case channelMessage(ChannelFault)

    package var description: String {
        switch self {
        case .workerFailed(let why): why
        case let .unexpectedAnswer(request, got): "worker: asked the helper for \(request), got a \(got) message"
        case let .missingDescriptor(role): "worker: the helper's descriptors lack the \(role) descriptor"
        case let .deviceModeMismatch(interface, tap):
            "worker: the helper passed \(interface) as a \(tap ? "TUN" : "TAP") device, the config says "
                + "\(tap ? "TAP" : "TUN") mode"
        case let .tooManyPeers(count, limit): "\(count) peers configured; a tunnel runs at most \(limit)"
        case .serverNeedsRoot: "--server needs root: the server's root helper creates a tun for each client"
        case .serverNeedsNetAdmin: "--server needs CAP_NET_ADMIN to create a tun for each client, and this root process lacks it (a container, or a capability bounding set without it); give squtun CAP_NET_ADMIN"
        case let .serverKeyNotPrivate(path): "\(path): in server mode -k takes the server's private key (squtun genkey --keypair)"
        case let .channelIO(operation, errno):
            "helper/worker channel: \(operation) failed (\(errno)); the other squtun process has probably exited"
        case .channelClosed:
            "helper/worker channel closed: the other squtun process exited"
        case let .channelMessage(.unsupportedVersion(type, got, supported)):
            "helper/worker channel: the other squtun process sent a version \(got) \(type) message; this one reads version \(supported) (are helper and worker different squtun builds?); stopping"
        case let .channelMessage(fault):
            "helper/worker channel: \(fault); stopping (the other squtun process is broken)"
        }
    }
}
