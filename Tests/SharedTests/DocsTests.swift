import Foundation
import XCTest

/// The documents speak to users about squtun, not about the project's
/// tracker: no issue or pull-request numbers in what ships or is read first.
final class DocsTests: XCTestCase {
    private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    private func userDocuments() throws -> [String] {
        var paths = ["README.md", "bench/README.md", "docs/squtun.8", "etc/network/squtun-ifupdown",
                     "systemd/squtun@.service", "systemd/squtun-server.service", "debian/squtun.tmpfiles"]
        func names(in dir: String) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(dir).path)
        }
        for dir in ["docs", "etc/network/interfaces.d", "etc/squtun"] {
            for name in try names(in: dir) where name.hasSuffix(".md") || name.hasSuffix(".example") {
                // An example directory (etc/squtun/peers.example): its files.
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: root.appendingPathComponent("\(dir)/\(name)").path,
                                                   isDirectory: &isDirectory)
                paths += isDirectory.boolValue ? try names(in: "\(dir)/\(name)").map { "\(dir)/\(name)/\($0)" } : ["\(dir)/\(name)"]
            }
        }
        return paths
    }

    func testNoIssueNumbers() throws {
        // "issue 5", "issues #12", "(#34)", " #56", "PR 7".
        let pattern = try NSRegularExpression(pattern: #"(?i)\b(issues?|pull requests?|PR)\s*#?\d+|(^|[\s(\[])#\d+\b"#,
                                              options: [.anchorsMatchLines])
        let documents = try userDocuments()
        XCTAssertGreaterThan(documents.count, 10)
        for path in documents {
            let text = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let s = String(line)
                if pattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil {
                    XCTFail("\(path):\(n + 1): refers to the project's tracker: \(s)")
                }
            }
        }
    }
}
