import Glibc

/// Where the running daemon's log lines go: stderr in the foreground (-f),
/// syslog when daemonized, and, in the worker, over the channel to the
/// helper (the chrooted worker cannot reach /dev/log; the helper logs for it).
enum Log {
    enum Sink {
        case stderr
        case syslog
        case channel(Channel)
    }

    nonisolated(unsafe) static var sink: Sink = .stderr
    /// Prefix of stderr lines.
    nonisolated(unsafe) static var tag = "squtun"

    static func useSyslog(ident: String) {
        // openlog keeps the pointer: give it storage that lives forever.
        let p = strdup(ident)
        openlog(p, LOG_PID | LOG_NDELAY, LOG_DAEMON)
        sink = .syslog
    }

    static func write(_ level: Int32, _ message: String) {
        switch sink {
        case .stderr:
            let line = "\(tag): \(message)\n"
            _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
        case .syslog:
            message.withCString { vsyslogString(level, $0) }
        case .channel(let ch):
            // Nothing else to do if the helper is gone: the loop notices the hang-up.
            try? ch.sendLog(level: level, text: message)
        }
    }

    static func error(_ m: String) { write(LOG_ERR, m) }
    static func warning(_ m: String) { write(LOG_WARNING, m) }
    static func notice(_ m: String) { write(LOG_NOTICE, m) }
    static func info(_ m: String) { write(LOG_INFO, m) }
}

/// syslog(level, "%s", text): never pass a message as the format.
private func vsyslogString(_ level: Int32, _ text: UnsafePointer<CChar>) {
    withVaList([text]) { vsyslog(level, "%s", $0) }
}
