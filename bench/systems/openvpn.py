"""OpenVPN in static-key mode (`--secret`, no TLS): AES-256-CBC +
HMAC-SHA256, one pre-shared key from `openvpn --genkey secret`, UDP,
point-to-point `--ifconfig`, data channel offload off (static-key mode
cannot use it anyway). OpenVPN 2.6 only warns that --secret is deprecated;
2.7 refuses it unless --allow-deprecated-insecure-static-crypto is given,
which is added when this openvpn knows it. MTU: OpenVPN's defaults
(--tun-mtu 1500, and --mssfix's default so TCP segments still fit the
1500-byte underlay). One process per end."""

import os
import subprocess

from .common import Proc, SetupError, Tunnel, first_line, run

NAME = "openvpn"
LABEL = "OpenVPN"
PACKAGES = ["openvpn"]
BINARIES = ["openvpn"]
CIPHER = "AES-256-CBC + HMAC-SHA256, static key"
MTU_NOTE = "OpenVPN default: tun-mtu 1500, default --mssfix keeps TCP unfragmented"
ADDR = ("10.78.{}.1", "10.78.{}.2")
PORT = 1194


def version():
    return first_line(["openvpn", "--version"]).split(" x86_64")[0]


def _extra_flags():
    p = subprocess.run(["openvpn", "--help"], capture_output=True, text=True)
    text = p.stdout + p.stderr
    flags = ["--disable-dco"] if "--disable-dco" in text else []
    if "allow-deprecated-insecure-static-crypto" in text:
        flags.append("--allow-deprecated-insecure-static-crypto")
    return flags


def setup(w):
    key = os.path.join(w.work, "static.key")
    run(["openvpn", "--genkey", "secret", key])
    os.chmod(key, 0o600)
    addrs = {"a": ADDR[0].format(w.index), "b": ADDR[1].format(w.index)}
    procs = []
    for end, other in (("a", "b"), ("b", "a")):
        p = w.spawn(end, f"tun-{end}", [
            "openvpn", "--dev", "tun0", "--dev-type", "tun", "--proto", "udp",
            "--local", w.under(end), "--lport", str(PORT),
            "--remote", w.under(other), "--rport", str(PORT),
            "--ifconfig", addrs[end], addrs[other],
            "--secret", key, "--cipher", "AES-256-CBC", "--auth", "SHA256",
            "--verb", "3"] + _extra_flags())
        procs.append(Proc(p.pid, end, "daemon"))
    # OpenVPN configures the address itself once the device is up.
    for end in ("a", "b"):
        if not w.wait_for(lambda: w.has_addr(end, "tun0", addrs[end]), 15, 0.2):
            raise SetupError(f"openvpn {end}: tun0 not configured within 15 s:\n" + w.log_tail(f"tun-{end}"))
    return Tunnel(addrs["a"], addrs["b"], w.link_mtu("a", "tun0"), procs)


def details(w, t):
    """OpenVPN's own statement of the data channel it uses, from its log."""
    out = {}
    for end in ("a", "b"):
        lines = [l.strip() for l in w.log_tail(f"tun-{end}", 200).splitlines() if "Data Channel:" in l]
        out[end] = lines[-1] if lines else None
    return {"data_channel_log": out, "version_line": first_line(["openvpn", "--version"])}
