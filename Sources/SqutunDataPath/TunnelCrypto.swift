import SqutunSystem
import Shared
import squtun_crypto

/// The sealer and opener of one tunnel end, made before any privilege drop.
/// Both take their session keys from one key source: today the pre-shared
/// key's (`SessionKeyDeriver`); a public-key setup would hand in its own.
public struct TunnelCrypto {
    public let sealer: Sealer
    public let opener: Opener

    public init(psk: SecretBytes, start: RunStart, formerSessions: [UInt64] = [], skewSeconds: Int) throws {
        try self.init(keySource: SessionKeyDeriver(psk: psk), start: start, formerSessions: formerSessions,
                      skewSeconds: skewSeconds)
    }

    public init(keySource: SessionKeyDeriver, start: RunStart, formerSessions: [UInt64] = [],
                skewSeconds: Int) throws {
        let algorithms = try CryptoAlgorithms()
        sealer = try Sealer(algorithms: algorithms, keySource: keySource, session: start.session)
        opener = try Opener(algorithms: algorithms, keySource: keySource, ownSession: start.session,
                            startMs: start.wallMs, startMonotonicMs: start.monotonicMs,
                            formerSessions: formerSessions, skewSeconds: skewSeconds)
    }
}
