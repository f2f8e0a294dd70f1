"""squtun: both ends in the foreground (-f) as in Tests/e2e/lib.sh, on
pre-created tun devices owned by the test user, with a chroot directory
the bench creates. AES-256-CBC + HMAC-SHA256 (encrypt-then-MAC), one
pre-shared key made by `squtun genkey`. Counted processes: the root helper
(its pid from the pid file) and its worker (the helper's only child) on
each end."""

import os
import subprocess

from .common import SetupError, Proc, Tunnel, children, run

NAME = "squtun"
LABEL = "squtun"
PACKAGES = ["libssl-dev", "libseccomp-dev", "pkg-config"]   # to build it
BINARIES = []
CIPHER = "AES-256-CBC + HMAC-SHA256 (EtM, 32-byte tag), PSK"
MTU_NOTE = "`squtun -m 1500` (1391)"
ADDR = ("10.77.{}.1", "10.77.{}.2")
PORTS = (3456, 3457)


def version():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run(["git", "-C", root, "describe", "--always", "--tags", "--dirty"],
                       capture_output=True, text=True)
    return f"squtun {p.stdout.strip() or '?'}"


def ensure_user(user):
    if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
        run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", user])


def setup(w):
    binary = w.opts["squtun"]
    user = w.opts["user"]
    ensure_user(user)
    empty = os.path.join(w.work, "empty")
    os.makedirs(empty, exist_ok=True)
    os.chmod(empty, 0o755)
    key = os.path.join(w.work, "key")
    run([binary, "genkey", key])
    mtu = int(run([binary, "-m", "1500"]).stdout.strip())
    addrs = {"a": ADDR[0].format(w.index), "b": ADDR[1].format(w.index)}
    for end in ("a", "b"):
        ns = w.ns(end)
        run(["ip", "-n", ns, "tuntap", "add", "dev", "tun0", "mode", "tun", "user", user])
        run(["ip", "-n", ns, "addr", "add", f"{addrs[end]}/24", "dev", "tun0"])
        run(["ip", "-n", ns, "link", "set", "tun0", "mtu", str(mtu), "up"])
    helpers = {}
    for end, other, lport, rport in (("a", "b", PORTS[0], PORTS[1]), ("b", "a", PORTS[1], PORTS[0])):
        helpers[end] = w.spawn(end, f"tun-{end}", [
            binary, "-f", "-u", user, "--chroot", empty,
            "--pidfile", os.path.join(w.work, f"{end}.pid"),
            "--control", os.path.join(w.work, f"{end}.sock"),
            "-l", str(lport), "-p", w.under(other), "-r", str(rport),
            "-i", "tun0", "-k", key, "-a", "25", "-c", "30"] + w.opts.get("extra_args", []))
    procs = []
    for end in ("a", "b"):
        pidfile = os.path.join(w.work, f"{end}.pid")
        if not w.wait_for(lambda: os.path.getsize(pidfile) > 0 and children(helpers[end].pid), 10):
            raise SetupError(f"squtun {end}: no pid file or no worker within 10 s:\n"
                             + w.log_tail(f"tun-{end}"))
        helper = int(open(pidfile).read().split()[0])
        if helper != helpers[end].pid:
            raise SetupError(f"squtun {end}: pid file says {helper}, started {helpers[end].pid}")
        kids = children(helper)
        if len(kids) != 1:
            raise SetupError(f"squtun {end}: helper {helper} has children {kids}, expected one worker")
        procs += [Proc(helper, end, "helper"), Proc(kids[0], end, "worker")]
    return Tunnel(addrs["a"], addrs["b"], mtu, procs)


def details(w, t):
    """`squtun status` of both ends, as a dict of counters."""
    out = {}
    for end in ("a", "b"):
        p = w.sh(end, [w.opts["squtun"], "status", "tun0", "--control",
                       os.path.join(w.work, f"{end}.sock")], check=False, timeout=10)
        fields = {}
        for line in p.stdout.splitlines():
            k, _, v = line.partition(": ")
            v = v.strip()
            fields[k.strip()] = int(v) if v.isdigit() else v
        out[end] = fields
    return {"status": out}
