import SqutunSystem
import Glibc

/// What the data path's loop waits on: one poll set with a fixed slot per
/// kind of fd, so that a ready fd is known by its slot, not by comparing
/// descriptors. An absent fd (no channel in the single process, no status
/// listener in some tests) keeps its slot with fd -1, which poll skips.
final class PollSlots {
    enum Slot: Int, CaseIterable {
        case udp, device, wake, channel, control
    }
    /// `Slot.allCases.count`, without the array allCases makes on each call.
    static let count = 5

    private let set: UnsafeMutablePointer<pollfd>
    private let descriptors: [FileDescriptor?]

    init(udp: FileDescriptor, device: FileDescriptor, wake: FileDescriptor, channel: FileDescriptor?,
         control: FileDescriptor?) {
        descriptors = [udp, device, wake, channel, control]
        precondition(Slot.allCases.count == Self.count)
        set = .allocate(capacity: Self.count)
        for slot in Slot.allCases {
            set[slot.rawValue] = pollfd(fd: descriptors[slot.rawValue]?.rawValue ?? -1, events: Int16(POLLIN),
                                        revents: 0)
        }
    }

    deinit { set.deallocate() }

    /// poll(2) on every slot; what it returned.
    func wait(timeoutMs: Int32) -> Int32 {
        poll(set, nfds_t(Self.count), timeoutMs)
    }

    /// The events of `slot` from the last wait, cleared.
    @inline(__always)
    func take(_ slot: Slot) -> Int16 {
        let ev = set[slot.rawValue].revents
        set[slot.rawValue].revents = 0
        return ev
    }

    func descriptor(_ slot: Slot) -> FileDescriptor? { descriptors[slot.rawValue] }

    func drain(_ slot: Slot) { descriptors[slot.rawValue]?.drain() }
}
