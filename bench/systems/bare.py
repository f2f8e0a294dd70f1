"""Bare veth: iperf3 and ping straight over the underlay, no tunnel. The
ceiling every tunnel is measured against; no tunnel process, so no CPU per
GB and no RSS (all the work is the kernel's and iperf3's)."""

import platform

from .common import UNDER_A, UNDER_B, UNDER_MTU, Tunnel

NAME = "bare"
LABEL = "bare veth"
PACKAGES = []
BINARIES = []
CIPHER = "none"
MTU_NOTE = f"{UNDER_MTU} (the veth itself)"


def version():
    return f"Linux {platform.release()}"


def setup(w):
    return Tunnel(UNDER_A, UNDER_B, UNDER_MTU, [])
