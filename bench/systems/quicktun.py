"""QuickTun (Debian's combined binary, configured through IF_QT_*
environment variables as its ifupdown hooks do) with the `nacltai`
protocol: a Curve25519 key pair per end (quicktun's own `keypair` tool),
XSalsa20-Poly1305 (NaCl crypto_box, precomputed shared key) with a TAI64NA
timestamp as nonce and a replay window. quicktun's Debian build has raw,
nacl0 and nacltai; nacltai is the one with replay protection, the one its
documentation recommends. One process per end; it creates its tun device,
the bench then sets the address and MTU.

MTU: quicktun recommends none (the device stays at 1500, which fragments
every full packet on the underlay), so the bench sets the largest MTU that
fits a 1500-byte IPv4 underlay: 1500 - 28 (IPv4+UDP) - 32 (16-byte nonce,
16-byte Poly1305 tag) = 1440."""

import os

from .common import Proc, SetupError, Tunnel, dpkg_version, run

NAME = "quicktun"
LABEL = "quicktun"
PACKAGES = ["quicktun"]
BINARIES = ["quicktun"]
CIPHER = "nacltai: XSalsa20-Poly1305, Curve25519"
MTU = 1500 - 28 - 32
MTU_NOTE = f"{MTU} = 1500 - 28 - 32 (nacltai overhead); quicktun's own default 1500 fragments"
ADDR = ("10.80.{}.1", "10.80.{}.2")
PORT = 2998
KEYPAIR = "/usr/sbin/keypair"


def version():
    return f"quicktun {dpkg_version('quicktun')} (Debian package)"


def _keypair():
    out = run([KEYPAIR]).stdout
    kv = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return kv["SECRET"].strip(), kv["PUBLIC"].strip()


def setup(w):
    addrs = {"a": ADDR[0].format(w.index), "b": ADDR[1].format(w.index)}
    keys = {"a": _keypair(), "b": _keypair()}
    procs = []
    for end, other in (("a", "b"), ("b", "a")):
        env = {"IFACE": "qt0", "IF_QT_TUN_MODE": "1", "IF_QT_PROTOCOL": "nacltai",
               "IF_QT_LOCAL_ADDRESS": w.under(end), "IF_QT_LOCAL_PORT": str(PORT),
               "IF_QT_REMOTE_ADDRESS": w.under(other), "IF_QT_REMOTE_PORT": str(PORT),
               "IF_QT_PRIVATE_KEY": keys[end][0], "IF_QT_PUBLIC_KEY": keys[other][1],
               "IF_QT_TIME_WINDOW": "5"}
        p = w.spawn(end, f"tun-{end}", ["quicktun"], env=env)
        procs.append(Proc(p.pid, end, "daemon"))
    for end in ("a", "b"):
        ok = w.wait_for(lambda: w.sh(end, ["ip", "link", "show", "dev", "qt0"], check=False).returncode == 0, 10, 0.2)
        if not ok:
            raise SetupError(f"quicktun {end}: no qt0 within 10 s:\n" + w.log_tail(f"tun-{end}"))
        w.sh(end, ["ip", "addr", "add", f"{addrs[end]}/24", "dev", "qt0"])
        w.sh(end, ["ip", "link", "set", "qt0", "mtu", str(MTU), "up"])
    return Tunnel(addrs["a"], addrs["b"], w.link_mtu("a", "qt0"), procs)
