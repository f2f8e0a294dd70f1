import CShim

/// xoshiro256** seeded from getrandom(2): fast, not cryptographic (the
/// attacker's bytes only need to be unpredictable to the test, not secret).
struct FastRandom {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var seed = [UInt64](repeating: 0, count: 4)
        while seed.allSatisfy({ $0 == 0 }) {
            _ = seed.withUnsafeMutableBytes { squtun_getrandom($0.baseAddress, $0.count) }
        }
        s = (seed[0], seed[1], seed[2], seed[3])
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = Self.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = Self.rotl(s.3, 45)
        return result
    }

    /// Uniform in 0..<n (n > 0; the tiny modulo bias does not matter here).
    @inline(__always)
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    mutating func fill(_ p: UnsafeMutableRawPointer, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            p.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
            i += 8
        }
        if i < count {
            var last = next()
            while i < count {
                p.storeBytes(of: UInt8(truncatingIfNeeded: last), toByteOffset: i, as: UInt8.self)
                last >>= 8
                i += 1
            }
        }
    }
}
