"""tinc 1.0 in router mode: one tincd per end in the foreground (-D), a
2048-bit RSA key pair per node made at run time (`tincd -K`), both host
files in both config directories, A connects to B (TCP meta connection on
port 6550, data over UDP on the same port). Data channel set to
AES-256-CBC + HMAC-SHA256 with the full 32-byte MAC (Cipher, Digest,
MACLength in both host files), the same primitives as squtun; tinc 1.0's
default would be Blowfish-CBC + HMAC-SHA1 truncated to 4 bytes.

MTU: tinc's default: the device stays at 1500 and tinc does its own path
MTU discovery and clamps TCP MSS (PMTUDiscovery, ClampMSS). Until the PMTU
is fixed, tinc sends packets larger than the smallest confirmed size over
its TCP meta connection, so `ready` waits (at most 40 s) until both nodes
report a fixed PMTU (SIGUSR2 node dump: min == max)."""

import os
import re
import signal
import time

from .common import Proc, SetupError, Tunnel, first_line, run

NAME = "tinc"
LABEL = "tinc"
PACKAGES = ["tinc"]
BINARIES = ["tincd"]
CIPHER = "AES-256-CBC + HMAC-SHA256, RSA-2048"
MTU_NOTE = "tinc default: device 1500, own PMTU discovery + ClampMSS"
ADDR = ("10.81.{}.1", "10.81.{}.2")
PORT = 6550
HOSTCONF = "Cipher = aes-256-cbc\nDigest = sha256\nMACLength = 32\n"


def version():
    return first_line(["tincd", "--version"])


def setup(w):
    addrs = {"a": ADDR[0].format(w.index), "b": ADDR[1].format(w.index)}
    dirs = {}
    pubs = {}
    for end in ("a", "b"):
        d = os.path.join(w.work, end)
        os.makedirs(os.path.join(d, "hosts"), exist_ok=True)
        conf = (f"Name = {end}\nMode = router\nAddressFamily = ipv4\nInterface = tinc0\n"
                f"BindToAddress = {w.under(end)}\nPort = {PORT}\n")
        if end == "a":
            conf += "ConnectTo = b\n"
        with open(os.path.join(d, "tinc.conf"), "w") as f:
            f.write(conf)
        up = os.path.join(d, "tinc-up")
        with open(up, "w") as f:
            f.write(f"#!/bin/sh\nip addr add {addrs[end]}/24 dev $INTERFACE\nip link set $INTERFACE up\n")
        os.chmod(up, 0o755)
        with open(os.path.join(d, "hosts", end), "w") as f:
            f.write("")
        run(["tincd", "-c", d, "-K2048"], timeout=60)
        with open(os.path.join(d, "hosts", end)) as f:
            pubs[end] = f.read()
        dirs[end] = d
    for end in ("a", "b"):
        for node in ("a", "b"):
            with open(os.path.join(dirs[end], "hosts", node), "w") as f:
                f.write(f"Address = {w.under(node)}\nPort = {PORT}\nSubnet = {addrs[node]}/32\n"
                        + HOSTCONF + pubs[node])
    procs = []
    for end in ("b", "a"):
        p = w.spawn(end, f"tun-{end}", ["tincd", "-D", "-d1", "-c", dirs[end],
                                        "--pidfile", os.path.join(dirs[end], "tinc.pid")])
        procs.append(Proc(p.pid, end, "daemon"))
        if end == "b":
            time.sleep(0.3)
    procs.sort(key=lambda p: p.end)
    for end in ("a", "b"):
        if not w.wait_for(lambda: w.has_addr(end, "tinc0", addrs[end]), 15, 0.2):
            raise SetupError(f"tinc {end}: tinc0 not configured within 15 s:\n" + w.log_tail(f"tun-{end}"))
    return Tunnel(addrs["a"], addrs["b"], w.link_mtu("a", "tinc0"), procs)


NODE_RE = re.compile(r" (?P<name>[ab]) at .* cipher (?P<cipher>-?\d+) digest (?P<digest>-?\d+) "
                     r"maclength (?P<mac>\d+) .* pmtu (?P<pmtu>\d+) \(min (?P<min>\d+) max (?P<max>\d+)\)")


def _pmtu(w, t):
    """{end: (pmtu, min, max, cipher, digest, maclength)} of the other node,
    from a fresh SIGUSR2 dump of each tincd."""
    out = {}
    for proc in t.procs:
        other = "b" if proc.end == "a" else "a"
        log = os.path.join(w.work, f"tun-{proc.end}.log")
        size = os.path.getsize(log)
        os.kill(proc.pid, signal.SIGUSR2)
        time.sleep(0.3)
        with open(log, errors="replace") as f:
            f.seek(size)
            for line in f:
                m = NODE_RE.search(line)
                if m and m.group("name") == other:
                    out[proc.end] = tuple(int(m.group(k)) for k in ("pmtu", "min", "max", "cipher", "digest", "mac"))
    return out


def ready(w, t):
    state = {}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        state = _pmtu(w, t)
        if len(state) == 2 and all(v[1] == v[2] and v[1] > 0 for v in state.values()):
            t.notes.append(f"PMTU fixed: A→B {state['a'][0]}, B→A {state['b'][0]}")
            return
        time.sleep(1)
    raise SetupError(f"tinc: PMTU not fixed within 40 s: {state}")


def details(w, t):
    return {"node_dump": {k: dict(zip(("pmtu", "min", "max", "cipher_nid", "digest_nid", "maclength"), v))
                          for k, v in _pmtu(w, t).items()}}
