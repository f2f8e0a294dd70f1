"""wireguard-go (the kernel here has no WireGuard module): one userspace
process per end in the foreground (-f), configured with `wg set`: a key
pair per end from `wg genkey`/`wg pubkey`, each the other's only peer with
a fixed endpoint. No pre-shared key (WireGuard's PSK is optional and does
not change the data path). ChaCha20-Poly1305. MTU: wireguard-go's default
(1420, which fits even an IPv6 underlay).

wireguard-go's control socket lives in /var/run/wireguard/IFACE.sock,
which all namespaces share, so the interface names carry the run's tag."""

import os

from .common import Proc, SetupError, Tunnel, first_line, run

NAME = "wireguard"
LABEL = "wireguard-go"
PACKAGES = ["wireguard-go", "wireguard-tools"]
BINARIES = ["wireguard-go", "wg"]
CIPHER = "ChaCha20-Poly1305, Noise IK (Curve25519)"
MTU_NOTE = "wireguard-go default (1420)"
ADDR = ("10.79.{}.1", "10.79.{}.2")
PORT = 51820


def version():
    return first_line(["wireguard-go", "--version"])


def setup(w):
    addrs = {"a": ADDR[0].format(w.index), "b": ADDR[1].format(w.index)}
    ifname = {"a": f"wga{w.tag}"[:15], "b": f"wgb{w.tag}"[:15]}
    keys = {}
    for end in ("a", "b"):
        priv = run(["wg", "genkey"]).stdout.strip()
        pub = run(["wg", "pubkey"], input=priv + "\n").stdout.strip()
        path = os.path.join(w.work, f"{end}.key")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(priv + "\n")
        keys[end] = (path, pub)
    procs = []
    env = {"WG_PROCESS_FOREGROUND": "1"}
    for end in ("a", "b"):
        sock = f"/var/run/wireguard/{ifname[end]}.sock"
        if os.path.exists(sock):
            raise SetupError(f"{sock} exists already: another wireguard-go with this name?")
        w.remove_later(sock)
        p = w.spawn(end, f"tun-{end}", ["wireguard-go", "-f", ifname[end]], env=env)
        procs.append(Proc(p.pid, end, "daemon"))
    for end, other in (("a", "b"), ("b", "a")):
        if not w.wait_for(lambda: os.path.exists(f"/var/run/wireguard/{ifname[end]}.sock"), 10):
            raise SetupError(f"wireguard-go {end}: no control socket within 10 s:\n" + w.log_tail(f"tun-{end}"))
        w.sh(end, ["wg", "set", ifname[end], "listen-port", str(PORT), "private-key", keys[end][0],
                   "peer", keys[other][1], "endpoint", f"{w.under(other)}:{PORT}",
                   "allowed-ips", f"{addrs[other]}/32"])
        w.sh(end, ["ip", "addr", "add", f"{addrs[end]}/24", "dev", ifname[end]])
        w.sh(end, ["ip", "link", "set", ifname[end], "up"])
    return Tunnel(addrs["a"], addrs["b"], w.link_mtu("a", ifname["a"]), procs)
