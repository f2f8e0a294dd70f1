import SqutunSystem
import SqutunDataPath
import SqutunPrivsep
import ArgumentParser
import Shared
import SqutunConfig

/// `squtun genkey [FILE]`: a new random key in key-file format.
struct Genkey: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a new random key, or create FILE (mode 0600) holding it.",
        discussion: "Refuses to overwrite an existing FILE."
    )

    @Argument(help: ArgumentHelp("File to create; without it the key goes to standard output.", valueName: "file"))
    var file: String?

    func validate() throws {
        if let file, file.isEmpty {
            throw ValidationError(ConfigError.badOption(option: "genkey", problem: "empty file name", value: file).description)
        }
    }

    func run() throws {
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
}
