"""fastd in tun mode: one process per end in the foreground, a Curve25519
key pair per end (`fastd --generate-key`, public half by `--show-key`),
handshake ec25519-fhmqvc (fastd's only protocol), each end the other's
only peer with a fixed remote. Method salsa2012+umac: the method fastd's
documentation recommends (fast on every CPU; it has no AES-CBC/HMAC
method, its AES one, aes128-ctr+gmac, "aes128-gcm", is the alternative).

MTU: fastd's documented recommendation for TUN mode over IPv4 with a
1500-byte link: 1500 - 28 - 24 = 1448 (its own default, 1500, fragments)."""

import os

from .common import Proc, SetupError, Tunnel, first_line, run

NAME = "fastd"
LABEL = "fastd"
PACKAGES = ["fastd"]
BINARIES = ["fastd"]
METHOD = "salsa2012+umac"
CIPHER = f"{METHOD}, ec25519-fhmqvc"
MTU = 1448
MTU_NOTE = "1448 (fastd's recommendation for TUN over IPv4, 1500-byte link)"
ADDR = ("10.82.{}.1", "10.82.{}.2")
PORT = 10000


def version():
    return first_line(["fastd", "--version"])


def setup(w):
    addrs = {"a": ADDR[0].format(w.index), "b": ADDR[1].format(w.index)}
    secrets, pubs = {}, {}
    for end in ("a", "b"):
        secrets[end] = run(["fastd", "--generate-key", "--machine-readable"]).stdout.strip()
        tmp = os.path.join(w.work, f"{end}.secret.conf")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f'secret "{secrets[end]}";\n')
        pubs[end] = run(["fastd", "-c", tmp, "--show-key", "--machine-readable"]).stdout.strip()
    procs = []
    for end, other in (("a", "b"), ("b", "a")):
        conf = os.path.join(w.work, f"{end}.conf")
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f'''log level info;
mode tun;
interface "fastd0";
method "{METHOD}";
bind {w.under(end)}:{PORT};
secret "{secrets[end]}";
mtu {MTU};
on up "ip addr add {addrs[end]}/24 dev $INTERFACE && ip link set dev $INTERFACE up";
peer "{other}" {{
    key "{pubs[other]}";
    remote {w.under(other)}:{PORT};
}}
''')
        p = w.spawn(end, f"tun-{end}", ["fastd", "-c", conf])
        procs.append(Proc(p.pid, end, "daemon"))
    for end in ("a", "b"):
        if not w.wait_for(lambda: w.has_addr(end, "fastd0", addrs[end]), 15, 0.2):
            raise SetupError(f"fastd {end}: fastd0 not configured within 15 s:\n" + w.log_tail(f"tun-{end}"))
    return Tunnel(addrs["a"], addrs["b"], w.link_mtu("a", "fastd0"), procs)
