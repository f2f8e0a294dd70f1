import SqutunSystem
import Shared
import squtun_crypto

/// The sealer and opener of one tunnel end for one suite, made before any
/// privilege drop. Both take their session keys from one key source: the
/// pre-shared key's (`SessionKeyDeriver`), or a keypair's tunnel key.
public struct SuiteCrypto<Cipher: SuiteCipher> {
    public let sealer: SuiteSealer<Cipher>
    public let opener: SuiteOpener<Cipher, SessionKeyDeriver>

    public init(psk: SecretBytes, start: RunStart, formerSessions: [UInt64] = [], skewSeconds: Int,
                keyId: UInt32 = 0, ethernet: Bool = false) throws {
        try self.init(keySource: SessionKeyDeriver(psk: psk), start: start, formerSessions: formerSessions,
                      skewSeconds: skewSeconds, keyId: keyId, ethernet: ethernet)
    }

    /// `keyId`: 0 between point-to-point peers; a server's client's key id
    /// (the client's own, at the client). `ethernet`: TAP mode, both ways.
    /// `derivations`: a derivation allowance the opener shares with others
    /// (a server's clients); nil: its own.
    public init(keySource: SessionKeyDeriver, start: RunStart, formerSessions: [UInt64] = [],
                skewSeconds: Int, keyId: UInt32 = 0, ethernet: Bool = false,
                algorithms: CryptoAlgorithms? = nil, derivations: DerivationAllowance? = nil) throws {
        let algorithms = try algorithms ?? CryptoAlgorithms()
        sealer = try SuiteSealer(algorithms: algorithms, keySource: keySource, session: start.session, keyId: keyId,
                                 ethernet: ethernet)
        opener = try SuiteOpener(algorithms: algorithms, keySource: keySource, ownSession: start.session,
                                 startMs: start.wallMs, startMonotonicMs: start.monotonicMs,
                                 formerSessions: formerSessions, skewSeconds: skewSeconds, keyId: keyId,
                                 ethernet: ethernet, sharedAllowance: derivations)
    }
}

/// The configured suite's sealer and opener: the one place a suite named
/// at run time becomes a type. The data path switches on it once at start
/// and runs code compiled for that suite (DataPath.swift).
public enum TunnelCrypto {
    case aes256CBCHMACSHA256(SuiteCrypto<PacketCipher>)
    case aes256GCM(SuiteCrypto<AES256GCMCipher>)
    case chacha20Poly1305(SuiteCrypto<ChaCha20Poly1305Cipher>)

    /// `ethernet`: TAP mode (`--tap`): frames, flags bit 0 on the wire.
    public init(suite: SuiteID = .defaultSuite, psk: SecretBytes, start: RunStart, formerSessions: [UInt64] = [],
                skewSeconds: Int, keyId: UInt32 = 0, ethernet: Bool = false) throws {
        let keys = try SessionKeyDeriver(psk: psk)
        switch suite {
        case .aes256CBCHMACSHA256:
            self = .aes256CBCHMACSHA256(try SuiteCrypto(keySource: keys, start: start, formerSessions: formerSessions,
                                                        skewSeconds: skewSeconds, keyId: keyId, ethernet: ethernet))
        case .aes256GCM:
            self = .aes256GCM(try SuiteCrypto(keySource: keys, start: start, formerSessions: formerSessions,
                                              skewSeconds: skewSeconds, keyId: keyId, ethernet: ethernet))
        case .chacha20Poly1305:
            self = .chacha20Poly1305(try SuiteCrypto(keySource: keys, start: start, formerSessions: formerSessions,
                                                     skewSeconds: skewSeconds, keyId: keyId, ethernet: ethernet))
        }
    }

    public var suite: SuiteID {
        switch self {
        case .aes256CBCHMACSHA256: .aes256CBCHMACSHA256
        case .aes256GCM: .aes256GCM
        case .chacha20Poly1305: .chacha20Poly1305
        }
    }
}
