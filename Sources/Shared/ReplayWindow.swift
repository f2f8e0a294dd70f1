// Sliding anti-replay window in the spirit of RFC 6479: a ring of 64-bit
// words; moving the window forward clears whole words, never shifts bits.
// Checking and marking are separate so a packet is marked only after it
// passed every other check (a forged packet must not burn a counter).

public struct ReplayWindow: Sendable {
    static let wordCount = Wire.replayBitmapBits / 64  // 32
    static let wordMask = UInt64(wordCount - 1)

    /// 32 words, fixed size; a tuple would avoid the heap but an Array made
    /// once per session is not on the per-packet path.
    private var words: [UInt64]
    /// Highest counter marked so far; meaningful only when `seenAny`.
    public private(set) var highest: UInt64 = 0
    public private(set) var seenAny = false

    public init() {
        words = Array(repeating: 0, count: Self.wordCount)
    }

    /// Forgets every counter (a new session starts).
    public mutating func reset() {
        for i in words.indices { words[i] = 0 }
        highest = 0
        seenAny = false
    }

    /// True if `counter` has not been marked and is not too old to tell.
    @inlinable
    public func check(_ counter: UInt64) -> Bool {
        guard seenAny else { return true }
        if counter > highest { return true }
        if highest - counter >= Wire.replayWindow { return false }
        return !isMarked(counter)
    }

    @usableFromInline
    func isMarked(_ counter: UInt64) -> Bool {
        let word = Int((counter >> 6) & Self.wordMask)
        return words[word] & (1 << (counter & 63)) != 0
    }

    /// Marks `counter` as seen, sliding the window forward if needed.
    /// Call only after `check(counter)` returned true for this packet.
    public mutating func mark(_ counter: UInt64) {
        if !seenAny {
            seenAny = true
            highest = counter
        } else if counter > highest {
            // Clear the words that the window slides over, at most all of them.
            let oldWord = highest >> 6
            let newWord = counter >> 6
            // A plain counted loop: a Range<UInt64> iteration is generic code
            // in debug builds, whose metadata look-ups allocate.
            var steps = Int(min(newWord - oldWord, UInt64(Self.wordCount)))
            var w = oldWord
            while steps > 0 {
                w &+= 1
                words[Int(w & Self.wordMask)] = 0
                steps -= 1
            }
            highest = counter
        }
        let word = Int((counter >> 6) & Self.wordMask)
        words[word] |= 1 << (counter & 63)
    }
}
