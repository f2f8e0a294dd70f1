// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "squtun",
    products: [
        .executable(name: "squtun", targets: ["squtund"]),
        // For the fuzz targets (fuzz/Package.swift depends on this package by path).
        .library(name: "Shared", targets: ["Shared"]),
        .library(name: "SqutunConfig", targets: ["SqutunConfig"]),
        .library(name: "squtun-crypto", targets: ["squtun-crypto"]),
        .library(name: "SqutunSystem", targets: ["SqutunSystem"]),
        .library(name: "SqutunDataPath", targets: ["SqutunDataPath"]),
        .library(name: "SqutunPrivsep", targets: ["SqutunPrivsep"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
    ],
    targets: [
        // libcrypto from OpenSSL 3 (libssl-dev). Only squtun-crypto imports it.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // libseccomp (libseccomp-dev): the worker's syscall allow-list.
        .systemLibrary(
            name: "CSeccomp",
            pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]
        ),
        // What Swift's Glibc module lacks (_GNU_SOURCE symbols and friends).
        .target(name: "CShim"),
        // The protocol, shared by every other module: header and wire
        // constants, replay window, drop reasons, MTU maths, clocks, secret bytes.
        .target(name: "Shared", dependencies: ["CShim"]),
        // Configuration: the command line surface, the config file, key files,
        // the validated settings, the server's peers directory (whose client
        // key ids are SHA-256 based: squtun-crypto).
        .target(
            name: "SqutunConfig",
            dependencies: [
                "Shared", "SqutunSystem", "squtun-crypto", "CShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The only code that touches OpenSSL.
        .target(name: "squtun-crypto", dependencies: ["COpenSSL", "Shared"]),
        // The system layer: typed fds, errno, sockets, the tun device, UDP
        // batch I/O, signals, pid and session files, privileges, seccomp,
        // the helper/worker channel and its messages.
        .target(name: "SqutunSystem", dependencies: ["Shared", "CShim", "CSeccomp"]),
        // The data path: the poll loop, tun offloads (segmenting, coalescing,
        // checksums), the send schedules and the counters.
        .target(name: "SqutunDataPath", dependencies: ["Shared", "squtun-crypto", "SqutunSystem", "CShim"]),
        // Privilege separation: setup before the roles split, the root
        // helper, starting and supervising the worker, the worker, logging.
        .target(
            name: "SqutunPrivsep",
            dependencies: ["Shared", "SqutunConfig", "squtun-crypto", "SqutunSystem", "SqutunDataPath", "CShim"]
        ),
        // The `squtun` command: parses, sets up, and hands over to a role.
        .executableTarget(
            name: "squtund",
            dependencies: [
                "Shared", "SqutunConfig", "squtun-crypto", "SqutunSystem", "SqutunDataPath", "SqutunPrivsep", "CShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Micro-benchmark (not a test): seal/open ns per packet vs `openssl speed`.
        .executableTarget(
            name: "squtun-microbench",
            dependencies: ["squtun-crypto", "Shared"],
            path: "bench/micro"
        ),
        // Benchmark (not a test): one process simulating many server-mode
        // clients, each a real v2 sender and receiver with its own key id,
        // key and UDP port, for bench/server. Not installed.
        .executableTarget(
            name: "squtun-swarm",
            dependencies: ["squtun-crypto", "Shared", "SqutunConfig", "SqutunSystem", "SqutunDataPath", "CShim"],
            path: "bench/swarm"
        ),
        // Test-only: forges, replays, tampers and floods datagrams for the
        // hostile-network suite (scripts/hostile). Not installed.
        .executableTarget(
            name: "squtun-attack",
            dependencies: ["squtun-crypto", "Shared", "SqutunConfig", "SqutunDataPath", "CShim"],
            path: "Tests/tools/attack"
        ),
        .testTarget(name: "SharedTests", dependencies: ["Shared", "SqutunConfig"]),
        .testTarget(name: "ConfigTests", dependencies: ["SqutunConfig", "Shared"]),
        // Runs the built `squtun` binary as a process.
        .testTarget(name: "CLITests", dependencies: ["Shared", "SqutunConfig"]),
        .testTarget(name: "CryptoTests", dependencies: ["squtun-crypto", "Shared"]),
        // Unit tests of the system layer, the data path's parts and privilege
        // separation (real sockets, real fds, real child processes).
        // The data path in one process: two tunnel ends over in-memory
        // device and socket fakes, real crypto; the offload code.
        .testTarget(
            name: "DataPathTests",
            dependencies: ["SqutunDataPath", "SqutunSystem", "Shared", "squtun-crypto", "CShim"]
        ),
        .testTarget(
            name: "DaemonTests",
            dependencies: ["squtund", "Shared", "SqutunConfig", "SqutunSystem", "SqutunDataPath", "SqutunPrivsep",
                           "CShim", "CSeccomp"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
