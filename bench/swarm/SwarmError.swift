/// Why squtun-swarm stopped.
enum SwarmError: Error, CustomStringConvertible {
    case usage(String)
    case system(String)

    var description: String {
        switch self {
        case .usage(let why), .system(let why): why
        }
    }
}
