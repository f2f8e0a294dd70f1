import CShim
#if canImport(Glibc)
import Glibc
#endif

/// A fixed-size buffer for key material: allocated once, never copied into
/// Swift arrays by this type, and wiped (explicit_bzero) when dropped.
///
/// Its pages are its own (mmap) and marked MADV_DONTDUMP, so that a core
/// dump never holds a key even where core dumps are allowed (squtun also
/// switches them off for its processes; see docs/OPERATIONS.md). Key
/// buffers are made at start and per key derivation, never per packet.
public final class SecretBytes: @unchecked Sendable {
    public let count: Int
    private let storage: UnsafeMutableRawBufferPointer
    /// false: mmap failed and the buffer came from malloc (no DONTDUMP).
    private let mapped: Bool

    public init(count: Int) {
        self.count = count
        let page = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)
        let size = (max(count, 1) + page - 1) / page * page
        let pages = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if let pages, pages != MAP_FAILED {
            _ = squtun_madvise_dontdump(pages, size)
            storage = UnsafeMutableRawBufferPointer(start: pages, count: size)  // zero-filled by the kernel
            mapped = true
        } else {
            storage = .allocate(byteCount: max(count, 1), alignment: 16)
            storage.initializeMemory(as: UInt8.self, repeating: 0)
            mapped = false
        }
    }

    /// Copies `bytes` into a new secret buffer. The caller wipes its own copy.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(count: bytes.count)
        if bytes.count > 0 { storage.copyMemory(from: bytes) }
    }

    deinit {
        wipe()
        if mapped { munmap(storage.baseAddress, storage.count) } else { storage.deallocate() }
    }

    /// Zeroes the contents now (also done on deinit).
    public func wipe() {
        squtun_wipe(storage.baseAddress, storage.count)
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
    }
}
