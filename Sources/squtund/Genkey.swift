import SqutunSystem
import SqutunDataPath
import SqutunPrivsep
import ArgumentParser
import Shared
import SqutunConfig
import squtun_crypto
#if canImport(Glibc)
import Glibc
#endif

/// `squtun genkey [FILE]`: a new random PSK in key-file format.
/// `squtun genkey --keypair NAME`: a new X25519 keypair, NAME.key and NAME.pub.
struct Genkey: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a new random PSK, or create FILE (mode 0600) holding it; "
            + "or create a keypair: NAME.key (private, mode 0600) and NAME.pub (public).",
        usage: """
            squtun genkey [<file>]
            squtun genkey --keypair NAME
            """,
        discussion: "Refuses to overwrite an existing file. With --keypair the public key is also printed; "
            + "give NAME.pub (or that line) to the peer, and keep NAME.key on this host."
    )

    @Argument(help: ArgumentHelp("File to create; without it the key goes to standard output.", valueName: "file"))
    var file: String?

    @Option(name: .customLong("keypair"),
            help: ArgumentHelp("Create NAME.key (this host's private key, mode 0600) and NAME.pub (its public key).",
                               valueName: "name"))
    var keypair: String?

    func validate() throws {
        if let file, file.isEmpty {
            throw ValidationError(ConfigError.badOption(option: "genkey", problem: "empty file name", value: file).description)
        }
        if let keypair {
            if keypair.isEmpty || keypair.hasSuffix("/") {
                throw ValidationError(ConfigError.badOption(option: "--keypair", problem: "needs a name for NAME.key and NAME.pub",
                                                            value: keypair).description)
            }
            if let file {
                throw ValidationError(ConfigError.badOption(option: "--keypair", problem: "takes no file besides NAME",
                                                            value: file).description)
            }
        }
    }

    func run() throws {
        if let keypair { return try makeKeypair(name: keypair) }
        let key = try KeyFile.generate()
        let text = KeyFile.encode(key)
        key.wipe()
        defer { text.wipe() }
        if let file {
            try KeyFile.create(path: file, text: text)
        } else {
            try KeyFile.write(text, to: 1, name: "standard output")
        }
    }

    /// NAME.key first (exclusive, 0600), then NAME.pub (exclusive, 0644); a
    /// .key whose .pub cannot be written is removed again, so a retry starts clean.
    private func makeKeypair(name: String) throws {
        let keyPath = name + ".key", pubPath = name + ".pub"
        if access(pubPath, F_OK) == 0 { throw ConfigError.keyFileExists(path: pubPath) }
        let privateKey = try X25519.generatePrivateKey()
        defer { privateKey.wipe() }
        let publicText = KeyFile.publicKeyText(try X25519.publicKey(of: privateKey))
        let keyText = KeyFile.encode(privateKey, prefix: KeyFile.privatePrefix)
        defer { keyText.wipe() }
        try KeyFile.create(path: keyPath, text: keyText)
        do {
            let line = Array((publicText + "\n").utf8)
            try line.withUnsafeBytes { try KeyFile.create(path: pubPath, text: SecretBytes(copying: $0), mode: 0o644) }
        } catch {
            unlink(keyPath)
            throw error
        }
        try Output.stdout(publicText + "\n")
    }
}

/// `squtun pubkey [FILE]`: the public key of a private key, from FILE or
/// standard input, as one line (the text of a .pub file).
struct Pubkey: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the public key of the private key in FILE (or on standard input).",
        discussion: "Refuses a PSK (which has no public key) and a public key."
    )

    @Argument(help: ArgumentHelp("Private key file (NAME.key); without it, standard input.", valueName: "file"))
    var file: String?

    func run() throws {
        let key: DecodedKey
        if let file, file != "-" {
            key = try KeyFile.readKey(path: file, role: .privateKey)
        } else {
            key = try KeyFile.readKey(fd: 0, name: "standard input", role: .privateKey)
        }
        defer { key.bytes.wipe() }
        try Output.stdout(KeyFile.publicKeyText(try X25519.publicKey(of: key.bytes)) + "\n")
    }
}
