// swift-tools-version:6.0
// libFuzzer targets for squtun (docs/FUZZING.md). A package of its own, so
// the main package's build never needs -sanitize=fuzzer; run them with
// `fuzz/run`. Each target is an executable whose `LLVMFuzzerTestOneInput`
// libFuzzer calls; libFuzzer supplies `main`, hence -parse-as-library.
import PackageDescription

// The main package, one directory up. Its identity is its directory's name
// (a path dependency's identity is the last path component), which
// depends on where it is checked out.
let mainPath = ".."
let mainIdentity: String = {
    let file = #filePath  // .../<checkout>/fuzz/Package.swift
    let parts = file.split(separator: "/", omittingEmptySubsequences: true)
    return parts.count >= 3 ? String(parts[parts.count - 3]).lowercased() : "squtun"
}()

let fuzzFlags: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "squtun-fuzz",
    dependencies: [
        .package(path: mainPath),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
    ],
    targets: [
        // Tiny C helpers (libcrypto one-shots) for the packet target's oracle.
        .target(name: "FuzzSupport", linkerSettings: [.linkedLibrary("crypto")]),
        // fail/note/require, shared by every target.
        .target(name: "FuzzOracle", path: "Sources/FuzzOracle"),
        // 1. Datagrams into an Opener (fixed PSK, own session, clock) and Header.parse.
        .executableTarget(
            name: "fuzz-packet",
            dependencies: [
                .product(name: "Shared", package: mainIdentity),
                .product(name: "squtun-crypto", package: mainIdentity),
                "FuzzSupport", "FuzzOracle",
            ],
            path: "Sources/FuzzPacket",
            swiftSettings: fuzzFlags
        ),
        // 2. Key file contents: KeyFile.decode and KeyFile.read on a 0600 file.
        .executableTarget(
            name: "fuzz-keyfile",
            dependencies: [
                .product(name: "Shared", package: mainIdentity),
                .product(name: "SqutunConfig", package: mainIdentity),
                "FuzzOracle",
            ],
            path: "Sources/FuzzKeyFile",
            swiftSettings: fuzzFlags
        ),
        // 3. Command lines: TunnelOptions.parse + resolve.
        .executableTarget(
            name: "fuzz-options",
            dependencies: [
                .product(name: "Shared", package: mainIdentity),
                .product(name: "SqutunConfig", package: mainIdentity),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "FuzzOracle",
            ],
            path: "Sources/FuzzOptions",
            swiftSettings: fuzzFlags
        ),
        // 4. Helper<->worker messages: ChannelCodec.decode.
        .executableTarget(
            name: "fuzz-channel",
            dependencies: [
                .product(name: "Shared", package: mainIdentity),
                .product(name: "SqutunSystem", package: mainIdentity),
                .product(name: "SqutunPrivsep", package: mainIdentity),
                "FuzzOracle",
            ],
            path: "Sources/FuzzChannel",
            swiftSettings: fuzzFlags
        ),
        // 5. Tun offloads: TSOPlan cutting what the kernel hands over, the
        // Coalescer merging what a peer sends.
        .executableTarget(
            name: "fuzz-offload",
            dependencies: [
                .product(name: "Shared", package: mainIdentity),
                .product(name: "SqutunSystem", package: mainIdentity),
                .product(name: "SqutunDataPath", package: mainIdentity),
                "FuzzOracle",
            ],
            path: "Sources/FuzzOffload",
            swiftSettings: fuzzFlags
        ),
    ],
    swiftLanguageModes: [.v6]
)
