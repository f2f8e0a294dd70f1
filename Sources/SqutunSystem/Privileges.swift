import Shared
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Users, the chroot directory and the one-way privilege drop. All of the
/// lookups (NSS, /etc/passwd) happen in the helper before anything is
/// dropped: the chrooted worker cannot read them.
public enum Privileges {
    /// uid and primary gid of `name` (getpwnam_r).
    public static func lookupUser(_ name: String) throws(SystemError) -> (uid: UInt32, gid: UInt32) {
        var size = max(Int(sysconf(Int32(_SC_GETPW_R_SIZE_MAX))), 1024)
        while true {
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let code = withUnsafeTemporaryAllocation(of: CChar.self, capacity: size) { buffer in
                getpwnam_r(name, &entry, buffer.baseAddress!, buffer.count, &result)
            }
            if code == ERANGE && size < 1 << 20 {
                size *= 4
                continue
            }
            if let found = result { return (found.pointee.pw_uid, found.pointee.pw_gid) }
            // getpwnam_r(3): 0, ENOENT, ESRCH, EBADF and EPERM all mean "no such user".
            if [0, ENOENT, ESRCH, EBADF, EPERM].contains(code) { throw .userMissing(name: name) }
            throw .userLookupFailed(name: name, errno: Errno(code))
        }
    }

    /// The chroot directory must exist, be a directory owned by root, not
    /// writable by group or others (else the worker or another user could
    /// plant files in it), and be empty (nothing for a compromised worker to
    /// use). Checks the directory itself, following symlinks like chroot(2).
    public static func checkChrootDirectory(_ path: String) throws(SystemError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let code = Errno.current
            if code.rawValue == ENOENT { throw .chrootMissing(path: path) }
            throw .chrootUnreadable(path: path, errno: code)
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw .chrootNotDirectory(path: path) }
        guard st.st_uid == 0 else { throw .chrootNotRootOwned(path: path, uid: st.st_uid) }
        guard st.st_mode & 0o022 == 0 else { throw .chrootWritable(path: path, mode: st.st_mode) }
        guard let dir = opendir(path) else { throw .chrootUnreadable(path: path, errno: .current) }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { throw .chrootNotEmpty(path: path, entry: name) }
        }
    }

    /// The one-way drop, in this fixed order: chroot, chdir("/"), drop
    /// supplementary groups, gid, uid; then verify every id, that root
    /// cannot be regained, that no capability is left; then no_new_privs.
    /// Every failure is fatal (the caller exits). Before calling: resolve
    /// and open everything the worker needs (user, peer, fds, OpenSSL).
    public static func dropPrivileges(chroot directory: String, uid: UInt32, gid: UInt32) throws(SystemError) {
        guard uid != 0, gid != 0 else { throw .targetIsRoot(uid: uid, gid: gid) }
        guard chroot(directory) == 0 else { throw .dropFailed(step: "chroot(\(directory))", errno: .current) }
        guard chdir("/") == 0 else { throw .dropFailed(step: "chdir(/)", errno: .current) }
        // Groups before gid before uid: after setresuid we could do neither.
        guard setgroups(0, nil) == 0 else { throw .dropFailed(step: "setgroups(0)", errno: .current) }
        guard squtun_setresgid(gid, gid, gid) == 0 else { throw .dropFailed(step: "setresgid(\(gid))", errno: .current) }
        guard squtun_setresuid(uid, uid, uid) == 0 else { throw .dropFailed(step: "setresuid(\(uid))", errno: .current) }
        try verifyDropped(uid: uid, gid: gid)
        try setNoNewPrivileges()
    }

    /// Checks that the process is `uid`/`gid` for good. Separate so that it
    /// can run (and be tested) on its own.
    public static func verifyDropped(uid: UInt32, gid: UInt32) throws(SystemError) {
        var r: uid_t = 0, e: uid_t = 0, s: uid_t = 0
        guard squtun_getresuid(&r, &e, &s) == 0, r == uid, e == uid, s == uid else {
            throw .dropNotVerified(check: "user ids are \(r)/\(e)/\(s), expected \(uid)")
        }
        var rg: gid_t = 0, eg: gid_t = 0, sg: gid_t = 0
        guard squtun_getresgid(&rg, &eg, &sg) == 0, rg == gid, eg == gid, sg == gid else {
            throw .dropNotVerified(check: "group ids are \(rg)/\(eg)/\(sg), expected \(gid)")
        }
        let groups = getgroups(0, nil)
        guard groups == 0 else { throw .dropNotVerified(check: "\(groups) supplementary groups remain") }
        // The real test: root must be out of reach.
        guard setuid(0) == -1, errno == EPERM else { throw .dropNotVerified(check: "setuid(0) did not fail with EPERM") }
        guard setgid(0) == -1, errno == EPERM else { throw .dropNotVerified(check: "setgid(0) did not fail with EPERM") }
        var effective: UInt64 = 0, permitted: UInt64 = 0, inheritable: UInt64 = 0
        guard squtun_capget(&effective, &permitted, &inheritable) == 0 else {
            throw .dropFailed(step: "capget", errno: .current)
        }
        guard effective == 0, permitted == 0, inheritable == 0 else {
            throw .dropNotVerified(check: "capabilities remain: effective \(hex(effective)), permitted \(hex(permitted)), inheritable \(hex(inheritable))")
        }
        guard squtun_ambient_caps_any() == 0 else { throw .dropNotVerified(check: "ambient capabilities remain") }
    }

    /// The non-root single-process mode: no chroot or setuid is possible,
    /// so: refuse any root id, then no_new_privs.
    public static func unprivilegedHardening() throws(SystemError) {
        var r: uid_t = 0, e: uid_t = 0, s: uid_t = 0
        guard squtun_getresuid(&r, &e, &s) == 0, r != 0, e != 0, s != 0 else { throw .stillRoot }
        try setNoNewPrivileges()
    }

    /// PR_SET_NO_NEW_PRIVS, read back: execve can never grant privileges
    /// again (setuid binaries, file capabilities), and seccomp may be loaded.
    public static func setNoNewPrivileges() throws(SystemError) {
        guard squtun_set_no_new_privs() == 0 else { throw .noNewPrivsFailed(errno: .current) }
        guard squtun_get_no_new_privs() == 1 else { throw .dropNotVerified(check: "no_new_privs did not stick") }
    }

    private static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
}
