import Foundation
import XCTest

/// What one run of the built `squtun` binary did.
struct Run {
    var stdout: String
    var stderr: String
    var status: Int32

    /// Lines on stderr (each "\n"-terminated line counts once).
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast() }
}

enum Squtun {
    /// The `squtun` executable: SwiftPM puts it in the products directory,
    /// which is also where the test runner (squtunPackageTests.xctest) is.
    static let binary: String = {
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((exe as NSString).deletingLastPathComponent)
        }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().path)
        candidates.append(Bundle.main.bundlePath)
        for dir in candidates where FileManager.default.isExecutableFile(atPath: dir + "/squtun") {
            return dir + "/squtun"
        }
        return (candidates.first ?? ".") + "/squtun"
    }()

    static func run(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Run {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            XCTFail("no squtun binary at \(binary)", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The outputs are small (help is the longest), far below a pipe's buffer.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, "squtun \(arguments) was killed", file: file, line: line)
        return Run(stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self),
                   status: process.terminationStatus)
    }
}
