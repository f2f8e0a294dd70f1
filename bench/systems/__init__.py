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
"""

ORDER = ["bare", "squtun", "openvpn", "wireguard", "quicktun", "tinc", "fastd"]
