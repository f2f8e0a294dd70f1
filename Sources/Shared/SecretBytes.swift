import CShim

/// A fixed-size buffer for key material: allocated once, never copied into
/// Swift arrays by this type, and wiped (explicit_bzero) when dropped.
public final class SecretBytes: @unchecked Sendable {
    public let count: Int
    private let storage: UnsafeMutableRawBufferPointer

    public init(count: Int) {
        self.count = count
        storage = .allocate(byteCount: max(count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
    }

    /// Copies `bytes` into a new secret buffer. The caller wipes its own copy.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(count: bytes.count)
        if bytes.count > 0 { storage.copyMemory(from: bytes) }
    }

    deinit {
        wipe()
        storage.deallocate()
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

    /// Constant-time equality (for tests and key comparisons, not MACs: see the crypto module).
    public func constantTimeEquals(_ other: SecretBytes) -> Bool {
        guard count == other.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<count { diff |= storage[i] ^ other.storage[i] }
        return diff == 0
    }
}
