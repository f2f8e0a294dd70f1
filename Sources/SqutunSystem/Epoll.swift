import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// An epoll(7) instance for the server's loop, where poll(2) over a
/// thousand client tuns would pass the whole set to the kernel on every
/// turn. Each registered fd carries a caller-chosen 64-bit token (a client's
/// slot, say) that comes back with its events. Waiting fills a buffer
/// allocated once here, so the loop allocates nothing per wait.
///
/// It owns its epoll fd (closed with it) and its buffer; registered fds stay
/// their owners'. Closing a registered fd removes it from the set (once
/// every duplicate is closed), but `remove` first says so explicitly.
public struct Epoll: ~Copyable {
    /// The epoll_ctl/epoll_wait mask bits (sys/epoll.h; the first ones are
    /// poll(2)'s).
    public struct Events: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: 0x001)      // EPOLLIN
        public static let writable = Events(rawValue: 0x004)      // EPOLLOUT
        public static let error = Events(rawValue: 0x008)         // EPOLLERR (always reported)
        public static let hangUp = Events(rawValue: 0x010)        // EPOLLHUP (always reported)
        public static let edgeTriggered = Events(rawValue: 1 << 31) // EPOLLET
    }

    private enum Operation: Int32 {
        case add = 1, remove = 2, modify = 3  // EPOLL_CTL_ADD, _DEL, _MOD
    }

    private let owned: OwnedDescriptor
    /// One block: `capacity` tokens, then `capacity` event masks.
    private let block: UnsafeMutableRawPointer
    private let tokens: UnsafeMutablePointer<UInt64>
    private let masks: UnsafeMutablePointer<UInt32>
    /// Most events one `wait` reports.
    public let capacity: Int

    /// The epoll fd, for tests and for nesting in another poll set.
    public var fd: FileDescriptor { owned.fd }

    /// Most events one wait can report (the C shim's stack buffer).
    public static let maxCapacity = Int(SQUTUN_EPOLL_MAX)

    /// epoll_create1(EPOLL_CLOEXEC) with room for `capacity`
    /// (1...maxCapacity) events per wait.
    public init(capacity: Int = Epoll.maxCapacity) throws(SystemError) {
        precondition((1...Self.maxCapacity).contains(capacity), "epoll capacity \(capacity) out of 1...\(Self.maxCapacity)")
        let raw = squtun_epoll_create()
        guard raw >= 0 else { throw .epollFailed(operation: "epoll_create1", errno: .current) }
        owned = OwnedDescriptor(FileDescriptor(rawValue: raw))
        self.capacity = capacity
        let tokenBytes = capacity * MemoryLayout<UInt64>.stride
        block = .allocate(byteCount: tokenBytes + capacity * MemoryLayout<UInt32>.stride, alignment: 8)
        tokens = block.initializeMemory(as: UInt64.self, repeating: 0, count: capacity)
        masks = (block + tokenBytes).initializeMemory(as: UInt32.self, repeating: 0, count: capacity)
    }

    deinit { block.deallocate() }

    /// Watches `fd` for `events`; `token` comes back with each of them.
    /// EEXIST if it is watched already.
    public func add(_ fd: FileDescriptor, events: Events, token: UInt64) throws(Errno) {
        try control(.add, fd, events, token)
    }

    /// Changes what `fd` is watched for, and its token. ENOENT if not watched.
    public func modify(_ fd: FileDescriptor, events: Events, token: UInt64) throws(Errno) {
        try control(.modify, fd, events, token)
    }

    /// Stops watching `fd` (before it is closed or handed on). ENOENT if not watched.
    public func remove(_ fd: FileDescriptor) throws(Errno) {
        try control(.remove, fd, [], 0)
    }

    private func control(_ operation: Operation, _ fd: FileDescriptor, _ events: Events, _ token: UInt64) throws(Errno) {
        _ = try retryingEINTR { squtun_epoll_ctl(owned.fd.rawValue, operation.rawValue, fd.rawValue, events.rawValue, token) }
    }

    /// Waits up to `timeoutMs` (-1: no limit, 0: just look) and returns how
    /// many events are ready (0 on timeout); read them with `token(at:)` and
    /// `events(at:)`, valid until the next wait. A signal's EINTR waits
    /// again: the signal handler's wake pipe, registered here, ends that wait.
    @inline(__always)
    public func wait(timeoutMs: Int32) throws(Errno) -> Int {
        Int(try retryingEINTR { squtun_epoll_wait(owned.fd.rawValue, tokens, masks, Int32(capacity), timeoutMs) })
    }

    /// The token of ready event `index` (0..<the count `wait` returned).
    @inline(__always)
    public func token(at index: Int) -> UInt64 {
        precondition(index >= 0 && index < capacity)
        return tokens[index]
    }

    /// What is ready for event `index`.
    @inline(__always)
    public func events(at index: Int) -> Events {
        precondition(index >= 0 && index < capacity)
        return Events(rawValue: masks[index])
    }

    /// Closes the epoll fd and frees the buffer (as dropping it does).
    public consuming func close() {}
}
