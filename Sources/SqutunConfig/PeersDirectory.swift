import Shared
import squtun_crypto
#if canImport(Glibc)
import Glibc
#endif

/// One client of a server: its file in the peers directory, read and checked.
public struct ClientFile: Sendable {
    /// The identifier: the file's name, the client's `--id`.
    public let name: String
    /// `ClientKeyID.keyId(for: name)`, never 0.
    public let keyId: UInt32
    /// 32 bytes: the client's PSK (PSK server) or its public key (keypair server).
    public let key: SecretBytes
}

/// The server's peers directory (`--peers`): one file per client, named by
/// the client's identifier, holding its PSK or, for a keypair server, its
/// public key. Read by the root helper only, at start and on SIGHUP.
///
/// A file that breaks a rule is skipped with one line naming it (the other
/// clients are served); only a directory that cannot be trusted as a whole
/// (missing, not a directory, not owned by root, writable by others) is an
/// error. The rules, in the order they are checked:
/// - names starting with '.' are skipped without a word (editors' and
///   package managers' leftovers); any other name must be an identifier
///   (`ClientID`);
/// - a regular file, opened without following a symbolic link;
/// - owned by root, not writable by group or others (whoever can change a
///   client's key can be that client); a PSK not readable by them either;
/// - at most `KeyFile.maxFileSize` bytes, holding the kind of key the
///   server takes (`KeyFormat.swift`'s formats);
/// - a key id no earlier file has (two identifiers can share one; the
///   first in byte order of names keeps it), and a key no earlier file has
///   (a key serves one client, so a datagram sealed with X's key claiming
///   Y's key id fails Y's check).
public enum PeersDirectory {
    /// What the client files hold.
    public enum Expecting: Sendable, Equatable {
        /// A PSK server (no -k): each file is the client's PSK.
        case psk
        /// A keypair server (-k holds its private key): each file is the client's public key.
        case publicKey
    }

    /// Entries read at most: bounds the work of a scan (a client each).
    public static let maxEntries = 65536

    /// Reads the directory at `path`: its valid clients sorted by name, and
    /// one line per refused entry (starting with the entry's path), sorted.
    /// `owner` is the uid the directory and the files must have: root, but
    /// a test may name another (and a smaller `maxEntries`). Throws only
    /// for an unusable directory.
    public static func scan(path: String, expecting: Expecting, owner: UInt32 = 0,
                            maxEntries: Int = PeersDirectory.maxEntries) throws(ConfigError)
        -> (clients: [ClientFile], problems: [String]) {
        let dir = try openDirectory(path: path, owner: owner)
        defer { closedir(dir) }
        var (names, problems) = readNames(dir, path: path, limit: maxEntries)
        names.sort { $0.lexicographicallyPrecedes($1) }
        var accepted: [ClientFile] = []
        var byKeyId: [UInt32: String] = [:]
        for raw in names {
            let name = String(decoding: raw, as: UTF8.self)
            let shown = show(entry(path, name))
            if !name.utf8.elementsEqual(raw) || !ClientID.isValid(name) {
                let shown = show(Array(entry(path, "").utf8) + raw)
                let problem = ClientID.problem(name) ?? "not an identifier"
                problems.append((raw, "\(shown): \(problem), so no client's --id; "
                                 + "rename it, or start its name with '.' to keep it unread"))
                continue
            }
            let key: SecretBytes
            switch readClientKey(dir: dir, name: name, shown: shown, expecting: expecting, owner: owner) {
            case .success(let k): key = k
            case .failure(let line):
                problems.append((raw, line.text))
                continue
            }
            let keyId = ClientKeyID.keyId(for: name)
            if let first = byKeyId[keyId] {
                key.wipe()
                problems.append((raw, "\(shown): key id \(hex(keyId)) is also the one of \(show(entry(path, first))), which keeps it "
                                 + "(two identifiers with one key id); rename this client"))
                continue
            }
            byKeyId[keyId] = name
            accepted.append(ClientFile(name: name, keyId: keyId, key: key))
        }
        let (clients, duplicates) = refuseDuplicateKeys(accepted, path: path)
        problems += duplicates
        problems.sort { $0.0.lexicographicallyPrecedes($1.0) }
        return (clients, problems.map(\.1))
    }

    /// The directory open for reading, once checked: a directory owned by
    /// `owner`, not writable by group or others (else anyone could add a client).
    static func openDirectory(path: String, owner: UInt32) throws(ConfigError) -> OpaquePointer {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw .peersDirectory(path: path, problem: "cannot open the directory (\(SharedError.errnoText()))")
        }
        var st = stat()
        var problem: String?
        if fstat(fd, &st) != 0 {
            problem = "cannot read it (\(SharedError.errnoText()))"
        } else if st.st_uid != owner {
            problem = "owned by uid \(st.st_uid), not \(owner == 0 ? "root" : "uid \(owner)"); "
                + "whoever owns it can add clients: chown root \(show(path))"
        } else if st.st_mode & 0o022 != 0 {
            problem = "mode \(SharedError.octal(st.st_mode)) lets others add clients; chmod 755 \(show(path))"
        }
        guard problem == nil, let dir = fdopendir(fd) else {
            let text = problem ?? "cannot read it (\(SharedError.errnoText()))"
            close(fd)
            throw .peersDirectory(path: path, problem: text)
        }
        return dir
    }

    /// The names of the directory's entries, bounded; those starting with
    /// '.' left out. A directory with more entries than `limit` gives a
    /// line, and the rest is not read.
    static func readNames(_ dir: OpaquePointer, path: String, limit: Int)
        -> (names: [[UInt8]], problems: [([UInt8], String)]) {
        var names: [[UInt8]] = []
        var problems: [([UInt8], String)] = []
        var count = 0
        while let entry = readdir(dir) {
            count += 1
            if count > limit {
                problems.append(([], "\(show(path)): more than \(limit) entries; the rest are not read"))
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name.first == UInt8(ascii: ".") { continue }
            names.append(name)
        }
        return (names, problems)
    }

    struct Line: Error { let text: String }

    /// The key in the client file `name`, if it passes every rule; else
    /// the one line that says which it breaks.
    static func readClientKey(dir: OpaquePointer, name: String, shown: String, expecting: Expecting,
                              owner: UInt32) -> Result<SecretBytes, Line> {
        // O_NOFOLLOW: a link could point anywhere root can read. O_NONBLOCK:
        // opening a FIFO must not hang; fstat refuses it next.
        let fd = openat(dirfd(dir), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP { return .failure(Line(text: "\(shown): a symbolic link; a client's file must be "
                                                    + "the file itself")) }
            return .failure(Line(text: "\(shown): cannot open (\(SharedError.errnoText(code)))"))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            return .failure(Line(text: "\(shown): cannot read (\(SharedError.errnoText()))"))
        }
        if st.st_mode & S_IFMT != S_IFREG { return .failure(Line(text: "\(shown): not a regular file")) }
        if st.st_uid != owner {
            return .failure(Line(text: "\(shown): owned by uid \(st.st_uid), who can change the key; chown root \(shown)"))
        }
        let fix = expecting == .psk ? "chmod 600" : "chmod 644"
        if st.st_mode & 0o022 != 0 {
            return .failure(Line(text: "\(shown): mode \(SharedError.octal(st.st_mode)) lets others change the key; "
                                 + "\(fix) \(shown)"))
        }
        if expecting == .psk && st.st_mode & 0o044 != 0 {
            return .failure(Line(text: "\(shown): mode \(SharedError.octal(st.st_mode)) lets others read the key; "
                                 + "\(fix) \(shown)"))
        }
        if st.st_size > KeyFile.maxFileSize {
            return .failure(Line(text: "\(shown): \(st.st_size) bytes is too large for a key file "
                                 + "(at most \(KeyFile.maxFileSize))"))
        }
        let decoded: DecodedKey
        do throws(ConfigError) {
            let raw = try KeyFile.readContents(fd: fd, name: shown)
            defer { raw.text.wipe() }
            decoded = try raw.text.withUnsafeBytes {
                KeyFile.decodeAny(UnsafeRawBufferPointer(rebasing: $0[0..<raw.length]), path: shown)
            }.get()
        } catch {
            return .failure(Line(text: "\(shown): \(error.keyFileProblem ?? error.description)"))
        }
        let wanted: KeyKind = expecting == .psk ? .psk : .publicKey
        guard decoded.kind == wanted else {
            decoded.bytes.wipe()
            return .failure(Line(text: "\(shown): \(wrongKind(decoded.kind, expecting: expecting))"))
        }
        return .success(decoded.bytes)
    }

    static func wrongKind(_ kind: KeyKind, expecting: Expecting) -> String {
        switch (kind, expecting) {
        case (.privateKey, _):
            return "holds a PRIVATE key; a private key never leaves its host: put the client's NAME.pub here"
        case (.publicKey, _):
            return "holds a public key, but this server has no private key (-k): its client files are PSKs "
                + "(squtun genkey); for a keypair server give -k its private key"
        default:
            return "holds a PSK, but this server is a keypair server (-k holds its private key): its client "
                + "files are the clients' public keys (their NAME.pub)"
        }
    }

    /// `clients` less those whose key an earlier (by name) client has, and a
    /// line for each of those. Sorted by key to find them, comparing the
    /// keys in place (no copy of a key outside its buffer).
    static func refuseDuplicateKeys(_ clients: [ClientFile], path: String)
        -> (clients: [ClientFile], problems: [([UInt8], String)]) {
        func compare(_ a: ClientFile, _ b: ClientFile) -> Int32 {
            a.key.withUnsafeBytes { x in b.key.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, 32) } }
        }
        // Ties by name: within one key's run the first is the one that keeps it.
        let order = clients.indices.sorted { i, j in
            let c = compare(clients[i], clients[j])
            return c != 0 ? c < 0 : clients[i].name.utf8.lexicographicallyPrecedes(clients[j].name.utf8)
        }
        var refused = Set<Int>()
        var problems: [([UInt8], String)] = []
        var keeper = 0
        for (n, i) in order.enumerated() {
            if n > 0 && compare(clients[order[keeper]], clients[i]) == 0 {
                refused.insert(i)
                let first = show(entry(path, clients[order[keeper]].name))
                problems.append((Array(clients[i].name.utf8), "\(show(entry(path, clients[i].name))): the same key "
                                 + "as \(first), which keeps it; every client needs a key of its own"))
                clients[i].key.wipe()
            } else {
                keeper = n
            }
        }
        return (clients.indices.filter { !refused.contains($0) }.map { clients[$0] }, problems)
    }

    /// The path of the entry `name` of the directory `path`.
    static func entry(_ path: String, _ name: String) -> String {
        path.hasSuffix("/") ? path + name : path + "/" + name
    }

    /// A path as the lines show it: as it is when that is unambiguous,
    /// else quoted, with a blank as itself and any other byte that is not
    /// printable ASCII (or is a quote or a backslash) as \xNN: one line
    /// whatever the name, its bytes as they are (not UTF-8 repaired).
    static func show(_ path: [UInt8]) -> String {
        func plain(_ b: UInt8) -> Bool { (0x21..<0x7f).contains(b) && b != UInt8(ascii: "'") && b != UInt8(ascii: "\\") }
        if path.allSatisfy(plain) { return String(decoding: path, as: UTF8.self) }
        var out = "'"
        for b in path {
            if plain(b) || b == UInt8(ascii: " ") { out.unicodeScalars.append(Unicode.Scalar(b)) }
            else { out += "\\x" + SharedError.hex2(b) }
        }
        return out + "'"
    }

    static func show(_ path: String) -> String { show(Array(path.utf8)) }

    static func hex(_ keyId: UInt32) -> String {
        let digits = String(keyId, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
