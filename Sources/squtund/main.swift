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

// Our own entry point instead of Squtun.main(): ArgumentParser would print
// its error plus usage lines; squtun prints one line and exits 64 for bad
// usage, 1 for other failures, and still prints full help for -h.
// The worker is this binary re-executed by the root helper (SqutunPrivsep/Helper.swift):
// it takes no options, only messages on fd 3.
if CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "--worker" {
    Worker.main()
}

do {
    var command = try Squtun.parseAsRoot()
    try command.run()
    exit(0)
} catch let error as ConfigError {
    Output.error(error.description)
    exit(error.exitCode)
} catch let error as SharedError {
    Output.error(error.description)
    exit(1)
} catch let error as CryptoError {
    Output.error(error.description)
    exit(1)
} catch {
    let code = Squtun.exitCode(for: error)
    if code == .success {
        // -h/--help (and other clean exits): the full text, on stdout.
        Output.help(Squtun.fullMessage(for: error))
    } else {
        let message = Squtun.message(for: error)
        if !message.isEmpty { Output.error(message) }
    }
    exit(code.rawValue)
}
