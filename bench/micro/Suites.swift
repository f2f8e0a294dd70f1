import squtun_crypto

// The suites squtun-microbench measures, in the order it prints them: the
// name `--cipher` takes, what `openssl speed` measures for the same work,
// and how to make one end's cipher. Everything else is generic over
// `SuiteCipher` (SuiteBench.swift), so a suite is one line here.
@MainActor let suiteEntries: [SuiteEntry] = [
    SuiteEntry("aes-256-cbc-hmac-sha256", .cbcHMACSHA256, forgedCosts: true) { try PacketCipher(algorithms: $0) },
    SuiteEntry("aes-256-gcm", .aead("aes-256-gcm")) { try AES256GCMCipher(algorithms: $0) },
    SuiteEntry("chacha20-poly1305", .aead("chacha20-poly1305")) { try ChaCha20Poly1305Cipher(algorithms: $0) },
]

/// The names of protocol v2's suites (docs/PROTOCOL.md): a name here but
/// not in `suiteEntries` is a suite this build of the benchmark does not
/// list yet, which is said as such rather than "unknown".
let protocolSuiteNames = ["aes-256-cbc-hmac-sha256", "aes-256-gcm", "chacha20-poly1305"]
