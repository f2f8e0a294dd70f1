"""One module per system the bench measures (see bench/README.md).

Each module defines:

    NAME       the --systems name
    LABEL      the name printed in the table
    PACKAGES   Debian packages it needs (installed by bench/run if missing)
    BINARIES   programs that must be on PATH afterwards
    CIPHER     the data-channel cipher and MAC the bench configures
    MTU_NOTE   which tun MTU is used and why
    version()  one line naming the installed version
    setup(w)   starts the tunnel in the World w (common.World) and returns a
               common.Tunnel; everything it starts goes through w.spawn, so
               w.destroy() removes it again
    ready(w, t)   optional: waits until the tunnel has settled (after the
               first ping got through)
    details(w, t) optional: a dict of extra facts for the JSON (counters)
    SUITE      squtun's systems only: the --cipher name of the suite measured
    TAP        squtun's systems only: True when it runs in TAP mode (--tap)

squtun has one system per cipher suite, and squtun-tap (the default suite
in TAP mode), all from squtun.py (`SUITES`);
`load` hands out each as a module-like object.
"""

import importlib

from . import squtun as _squtun

ORDER = ["bare", "squtun", "squtun-gcm", "squtun-chacha", "squtun-tap", "openvpn", "wireguard", "quicktun", "tinc", "fastd"]


def load(name):
    """The module (or, for a squtun suite, the module-like object) of a system."""
    if name in _squtun.SUITES:
        return _squtun.system(name)
    return importlib.import_module(f"{__name__}.{name}")


def is_squtun(name):
    return name in _squtun.SUITES
