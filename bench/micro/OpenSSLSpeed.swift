import Foundation
import Glibc

/// What `openssl speed` runs as the same work as one suite's seal and open.
enum OpenSSLReference {
    /// AES-256-CBC over the padded payload and HMAC-SHA256 over header, IV
    /// and ciphertext: seal = encrypt + HMAC, open = HMAC + decrypt (the sum
    /// of the separate times; CBC runs as one stream there, without a
    /// per-packet IV).
    case cbcHMACSHA256
    /// An EVP AEAD cipher by its openssl name. With `-aead` (OpenSSL 3.0 on)
    /// each operation is what a datagram costs: set the nonce, 13 bytes of
    /// AAD, the payload, the tag (`-decrypt`: checked against a wrong tag,
    /// the work is the same); that is the reference. squtun's AAD is the
    /// 32-byte header: one more 16-byte block of GHASH or Poly1305. The
    /// plain `-evp` figure (one stream: no nonce, AAD or tag per operation)
    /// is printed beside it, for what the cipher alone costs. Without
    /// `-aead` the stream figure is the reference, and the output says so.
    case aead(String)
}

/// One `openssl speed` figure: bytes per second at one buffer size.
struct SpeedFigure {
    let bytesPerSecond: Double
    /// The buffer size openssl measured: the one asked for (`-bytes`), or
    /// the nearest of its default sizes if this openssl has no `-bytes`.
    let bytes: Int
    let command: String
    var nsPerOperation: Double { Double(bytes) / bytesPerSecond * 1e9 }
}

/// Runs `openssl speed` in its machine-readable form (`-mr`) and reads the
/// figure for the buffer size asked for.
///
/// `-mr` prints the sizes measured as `+H:<size>:<size>:...` and per
/// algorithm `+F:<index>:<name>:<bytes/s at size 1>:<at size 2>:...`, one
/// column per `+H` size (the human table prints per block size in 1000s of
/// bytes/s, harder to read back). `-bytes N` makes openssl measure exactly
/// N-byte buffers, so `+H` is `N` and the figure is the column whose size is
/// N: the payload's own size, not 16/64/.../16384. Should `+H` not list N
/// (an openssl without `-bytes`), the column of the nearest size is taken
/// and the figure carries that size, which the output prints next to it.
/// The rates are the last fields of `+F` (the name could hold a colon).
final class OpenSSLSpeed {
    let seconds: Int
    /// `openssl speed -help` lists `-aead`.
    let hasAEADMode: Bool
    let version: String

    init(seconds: Int) {
        self.seconds = seconds
        let help = Self.output(of: "openssl speed -help 2>&1").text
        hasAEADMode = help.contains("-aead")
        version = Self.output(of: "openssl version 2>&1").text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `openssl speed -mr -elapsed -seconds S <selection> -bytes <bytes>`.
    func figure(_ selection: String, bytes: Int) -> SpeedFigure {
        let cmd = "openssl speed -mr -elapsed -seconds \(seconds) \(selection) -bytes \(bytes)"
        let (text, status) = Self.output(of: cmd + " 2>&1")
        var sizes: [Int] = []
        var rates: [Double] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("+H:") {
                sizes = line.dropFirst(3).split(separator: ":").compactMap { Int($0) }
            } else if line.hasPrefix("+F:") {
                let fields = line.split(separator: ":", omittingEmptySubsequences: false)
                rates = fields.suffix(max(sizes.count, 1)).compactMap { Double($0) }
            }
        }
        guard status == 0, !sizes.isEmpty, rates.count == sizes.count else {
            let tail = text.split(separator: "\n").suffix(3).joined(separator: " / ")
            fail("no figure from `\(cmd)` (exit \(status)): \(tail)")
        }
        // The exact size, else the nearest on a log scale.
        let column = sizes.firstIndex(of: bytes) ?? sizes.indices.min {
            abs(log(Double(sizes[$0]) / Double(bytes))) < abs(log(Double(sizes[$1]) / Double(bytes)))
        }!
        guard rates[column] > 0 else { fail("`\(cmd)`: a rate of 0") }
        return SpeedFigure(bytesPerSecond: rates[column], bytes: sizes[column], command: cmd)
    }

    private static func output(of cmd: String) -> (text: String, status: Int32) {
        guard let f = popen(cmd, "r") else { fail("cannot run: \(cmd)") }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let status = pclose(f)
        return (String(decoding: bytes, as: UTF8.self), status)
    }
}

/// The reference times for one suite and payload: ns per seal and per open
/// of the same work, each with the figures it sums.
struct ReferenceTimes {
    var seal: Double
    var open: Double
    /// One line per figure: what, the buffer size, ns, MB/s.
    var lines: [String]
    /// Figures printed for information only.
    var asides: [String] = []
    /// The figures are stream throughput, not per-packet AEAD (no `-aead`).
    var streamOnly = false
}

extension OpenSSLSpeed {
    /// `sealed`: the suite's ciphertext length for the payload (CBC: padded);
    /// `authenticated`: bytes under the MAC (CBC: header + IV + ciphertext).
    func reference(_ ref: OpenSSLReference, payload: Int, sealed: Int, authenticated: Int) -> ReferenceTimes {
        func line(_ what: String, _ f: SpeedFigure, asked: Int) -> String {
            let size = padded("\(f.bytes) B:", 8)
                + (f.bytes == asked ? "" : " (openssl has no -bytes: its nearest size to \(asked) B)")
            return "  " + padded(what, 40) + size
                + String(format: " %8.1f ns  (%7.1f MB/s)", f.nsPerOperation, f.bytesPerSecond / 1e6)
        }
        switch ref {
        case .cbcHMACSHA256:
            let enc = figure("-evp aes-256-cbc", bytes: sealed)
            let dec = figure("-evp aes-256-cbc -decrypt", bytes: sealed)
            let mac = figure("-hmac sha256", bytes: authenticated)
            return ReferenceTimes(seal: enc.nsPerOperation + mac.nsPerOperation,
                                  open: mac.nsPerOperation + dec.nsPerOperation,
                                  lines: [line("-evp aes-256-cbc", enc, asked: sealed),
                                          line("-evp aes-256-cbc -decrypt", dec, asked: sealed),
                                          line("-hmac sha256", mac, asked: authenticated)])
        case .aead(let name):
            let streamEnc = figure("-evp \(name)", bytes: payload)
            let streamDec = figure("-evp \(name) -decrypt", bytes: payload)
            let stream = [line("-evp \(name)", streamEnc, asked: payload),
                          line("-evp \(name) -decrypt", streamDec, asked: payload)]
            guard hasAEADMode else {
                return ReferenceTimes(seal: streamEnc.nsPerOperation, open: streamDec.nsPerOperation,
                                      lines: stream, streamOnly: true)
            }
            let enc = figure("-evp \(name) -aead", bytes: payload)
            let dec = figure("-evp \(name) -aead -decrypt", bytes: payload)
            return ReferenceTimes(seal: enc.nsPerOperation, open: dec.nsPerOperation,
                                  lines: [line("-evp \(name) -aead", enc, asked: payload),
                                          line("-evp \(name) -aead -decrypt", dec, asked: payload)],
                                  asides: stream)
        }
    }
}
