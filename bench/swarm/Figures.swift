import Foundation

/// Percentiles and the "name: value" lines bench/server reads.
enum Figures {
    /// The p-th percentile (0...100) of `values` (nearest rank); 0 if empty.
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    static func line(_ name: String, _ value: Double, digits: Int = 3) {
        emit("\(name): \(String(format: "%.\(digits)f", value))")
    }

    static func line(_ name: String, _ value: Int) { emit("\(name): \(value)") }

    /// Seconds with 2 decimals, for progress lines.
    static func seconds(_ ns: UInt64) -> String { String(format: "%.2f s", Double(ns) / 1e9) }
}
