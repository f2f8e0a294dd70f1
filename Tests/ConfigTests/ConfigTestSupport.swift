import Foundation
import ArgumentParser
import XCTest
@testable import SqutunConfig
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory (mkdtemp) for one test, removed with everything in it
/// by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ prefix: String) throws {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw XCTSkip("mkdtemp: \(String(cString: strerror(errno)))")
        }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func remove() {
        chmod(path, 0o700)
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The command line as the CLI takes it: ArgumentParser's parse (and
/// validate), then resolve().
enum CommandLineRun {
    static func tunnel(_ args: [String]) throws -> TunnelConfig {
        guard case .tunnel(let c) = try TunnelOptions.parse(args).resolve() else {
            throw ConfigError.badOption(option: "test", problem: "not a tunnel invocation", value: "\(args)")
        }
        return c
    }

    /// The one-line message and whether it is a usage error (exit 64), or
    /// nil if `args` are accepted.
    static func failure(_ args: [String]) -> (message: String, usage: Bool)? {
        do {
            _ = try TunnelOptions.parse(args).resolve()
            return nil
        } catch let error as ConfigError {
            return (error.description, error.isUsageError)
        } catch {
            return (TunnelOptions.message(for: error), TunnelOptions.exitCode(for: error) == .validationFailure)
        }
    }
}
