"""squtun: both ends in the foreground (-f) as in Tests/e2e/lib.sh, on
pre-created tun devices owned by the test user, with a chroot directory
the bench creates, one pre-shared key made by `squtun genkey`. Counted
processes: the root helper (its pid from the pid file) and its worker (the
helper's only child) on each end.

One system per cipher suite (`SUITES`): `squtun` is the default suite
(AES-256-CBC + HMAC-SHA256) and passes no --cipher, so that it also runs
squtun builds older than the suites (--compare); `squtun-gcm` and
`squtun-chacha` pass `--cipher NAME` to both ends and take the tun MTU from
`squtun -m 1500 --cipher NAME`. A binary without that option fails the row
with a message that says so (the other rows are still measured).

`squtun-tap` is the default suite in TAP mode: a TAP device (`ip tuntap
add ... mode tap`) on each end, `--tap` on both, the TAP MTU from
`squtun -m 1500 --tap`; ARP runs over the tunnel. A TAP device is attached
without offloads (no virtio header), so this row moves plain frames, one
read/write per frame, whatever --no-offload says."""

import functools
import os
import subprocess
import types

from .common import SetupError, Proc, Tunnel, children, run

PACKAGES = ["libssl-dev", "libseccomp-dev", "pkg-config"]   # to build it
BINARIES = []
ADDR = ("10.77.{}.1", "10.77.{}.2")
PORTS = (3456, 3457)
DEFAULT_SUITE = "aes-256-cbc-hmac-sha256"

# --systems name: (--cipher name, the table's cipher column)
SUITES = {
    "squtun": (DEFAULT_SUITE, "AES-256-CBC + HMAC-SHA256 (EtM, 32-byte tag), PSK"),
    "squtun-gcm": ("aes-256-gcm", "AES-256-GCM (AEAD, 16-byte tag), PSK"),
    "squtun-chacha": ("chacha20-poly1305", "ChaCha20-Poly1305 (AEAD, 16-byte tag), PSK"),
    "squtun-tap": (DEFAULT_SUITE, "AES-256-CBC + HMAC-SHA256 (EtM, 32-byte tag), PSK; Ethernet frames (--tap)"),
}
# The systems that run in TAP mode (layer 2).
TAP_SYSTEMS = {"squtun-tap"}

def version():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run(["git", "-C", root, "describe", "--always", "--tags", "--dirty"],
                       capture_output=True, text=True)
    return f"squtun {p.stdout.strip() or '?'}"


def ensure_user(user):
    if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
        run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", user])


def suite_mtu(binary, suite, tap=False):
    """`squtun -m 1500 [--cipher suite] [--tap]`: the device MTU for a 1500-byte underlay."""
    cmd = [binary, "-m", "1500"] + cipher_args(suite) + mode_args(tap)
    p = run(cmd, check=False)
    if p.returncode != 0:
        why = (p.stderr.strip() or p.stdout.strip() or f"exit {p.returncode}").splitlines()[0][:200]
        if tap:
            raise SetupError(f"this squtun binary does not take --tap ({why}): it needs a build with TAP mode")
        if suite != DEFAULT_SUITE:
            raise SetupError(f"this squtun binary does not take --cipher {suite} ({why}): "
                             "it needs a build with the cipher suites")
        raise SetupError(f"{' '.join(cmd)}: {why}")
    try:
        return int(p.stdout.strip())
    except ValueError:
        raise SetupError(f"{' '.join(cmd)}: not an MTU: {p.stdout.strip()[:200]!r}")


def cipher_args(suite):
    """The default suite is not named: the row then also runs older builds."""
    return [] if suite == DEFAULT_SUITE else ["--cipher", suite]


def mode_args(tap):
    return ["--tap"] if tap else []


def device(tap):
    return "tap0" if tap else "tun0"


def setup(w, suite=DEFAULT_SUITE, tap=False):
    binary = w.opts["squtun"]
    user = w.opts["user"]
    dev = device(tap)
    mtu = suite_mtu(binary, suite, tap)     # first: a binary without the suite fails here, before anything starts
    ensure_user(user)
    empty = os.path.join(w.work, "empty")
    os.makedirs(empty, exist_ok=True)
    os.chmod(empty, 0o755)
    key = os.path.join(w.work, "key")
    run([binary, "genkey", key])
    addrs = {"a": ADDR[0].format(w.index), "b": ADDR[1].format(w.index)}
    for end in ("a", "b"):
        ns = w.ns(end)
        run(["ip", "-n", ns, "tuntap", "add", "dev", dev, "mode", "tap" if tap else "tun", "user", user])
        run(["ip", "-n", ns, "addr", "add", f"{addrs[end]}/24", "dev", dev])
        run(["ip", "-n", ns, "link", "set", dev, "mtu", str(mtu), "up"])
    helpers = {}
    for end, other, lport, rport in (("a", "b", PORTS[0], PORTS[1]), ("b", "a", PORTS[1], PORTS[0])):
        helpers[end] = w.spawn(end, f"tun-{end}", [
            binary, "-f", "-u", user, "--chroot", empty,
            "--pidfile", os.path.join(w.work, f"{end}.pid"),
            "--control", os.path.join(w.work, f"{end}.sock"),
            "-l", str(lport), "-p", w.under(other), "-r", str(rport),
            "-i", dev, "-k", key, "-a", "25", "-c", "30"] + cipher_args(suite) + mode_args(tap)
            + w.opts.get("extra_args", []))
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


def details(w, t, tap=False):
    """`squtun status` of both ends, as a dict of counters."""
    out = {}
    for end in ("a", "b"):
        p = w.sh(end, [w.opts["squtun"], "status", device(tap), "--control",
                       os.path.join(w.work, f"{end}.sock")], check=False, timeout=10)
        fields = {}
        for line in p.stdout.splitlines():
            k, _, v = line.partition(": ")
            v = v.strip()
            fields[k.strip()] = int(v) if v.isdigit() else v
        out[end] = fields
    return {"status": out}


def system(name):
    """The module-like description of one suite's system (systems.load)."""
    suite, cipher = SUITES[name]
    tap = name in TAP_SYSTEMS
    label = name if suite == DEFAULT_SUITE else f"squtun {suite}"
    return types.SimpleNamespace(
        NAME=name, LABEL=label, PACKAGES=PACKAGES,
        BINARIES=BINARIES, CIPHER=cipher, SUITE=suite, TAP=tap,
        MTU_NOTE=f"`squtun -m 1500{''.join(' ' + a for a in cipher_args(suite) + mode_args(tap))}`",
        version=version, setup=functools.partial(setup, suite=suite, tap=tap),
        details=functools.partial(details, tap=tap))
