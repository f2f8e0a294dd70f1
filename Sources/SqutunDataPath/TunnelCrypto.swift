import SqutunSystem
import Shared
import squtun_crypto

/// The sealer and opener of one tunnel end, made before any privilege drop.
public struct TunnelCrypto {
    public let sealer: Sealer
    public let opener: Opener

    public init(psk: SecretBytes, start: RunStart, formerSessions: [UInt64] = [], skewSeconds: Int) throws {
        let algorithms = try CryptoAlgorithms()
        sealer = try Sealer(algorithms: algorithms, psk: psk, session: start.session)
        opener = try Opener(algorithms: algorithms, psk: psk, ownSession: start.session, startMs: start.wallMs,
                            startMonotonicMs: start.monotonicMs, formerSessions: formerSessions,
                            skewSeconds: skewSeconds)
    }
}
