import Glibc
import CShim

// TEMPORARY (lead's branch): replaced by the srvsys helper's Epoll.swift at merge.
public final class Epoll {
    private let fd: Int32
    private let events: UnsafeMutablePointer<epoll_event>
    public static let capacity = 64

    public init() throws(SystemError) {
        fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw .socketFailed(what: "the event loop", operation: "epoll_create1", errno: .current) }
        events = .allocate(capacity: Self.capacity)
    }

    deinit {
        close(fd)
        events.deallocate()
    }

    public func add(_ target: FileDescriptor, token: UInt64) throws(SystemError) {
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = token
        guard epoll_ctl(fd, EPOLL_CTL_ADD, target.rawValue, &ev) == 0 else {
            throw .socketFailed(what: "the event loop", operation: "epoll_ctl", errno: .current)
        }
    }

    public func wait(timeoutMs: Int32) throws(Errno) -> Int {
        let n = epoll_wait(fd, events, Int32(Self.capacity), timeoutMs)
        if n < 0 {
            if errno == EINTR { return 0 }
            throw Errno.current
        }
        return Int(n)
    }

    public func event(_ i: Int) -> (token: UInt64, events: UInt32) { (events[i].data.u64, events[i].events) }
}
