import Glibc
import CShim
import Shared

/// Notices one key file used by two squtun processes on a host. Keys bind
/// only the PSK and the sender's session (PROTOCOL.md §8), so two tunnels
/// sharing a key accept each other's datagrams; nothing in the protocol
/// can tell them apart, so the operator is told instead.
///
/// Each run keeps the key file open with a shared open-file-description
/// lock for its whole life (the descriptor is close-on-exec: the worker
/// never has it). A run that finds such a lock already held warns. Copies of
/// a key in two files are not noticed; the documentation says why one key
/// per tunnel matters.
public enum KeyFileUse {
    /// Takes this run's share of `path`; returns the descriptor to keep
    /// open and whether another process holds a share already. nil when the
    /// file cannot be opened or locked (the key was read: nothing to stop for).
    public static func claim(path: String) -> (fd: FileDescriptor, shared: Bool)? {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) else { return nil }
        let held = squtun_share_lock(fd.rawValue)
        if held < 0 {
            fd.close()
            return nil
        }
        return (fd, held == 1)
    }

    public static func warning(path: String) -> String {
        "key file \(SharedError.quote(path)) is also used by another squtun on this host: tunnels that share "
            + "a key accept each other's datagrams; give each tunnel its own key (squtun genkey), "
            + "unless that process is this tunnel's other end"
    }
}
