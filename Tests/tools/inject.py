#!/usr/bin/env python3
"""inject.py PID FD HEX: sends the bytes HEX as one message on descriptor FD
of process PID, through a duplicate of it taken with pidfd_getfd(2) (root,
Linux 5.6+). On the worker's channel end (fd 3) the helper cannot tell the
message from one the worker sent: a stand-in for a compromised worker that
needs no test switch in the binary. Exit 0 sent, 2 pidfd_getfd unavailable."""
import ctypes
import os
import sys

SYS_pidfd_getfd = 438  # the same number on every architecture

pid, fd, payload = int(sys.argv[1]), int(sys.argv[2]), bytes.fromhex(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
dup = libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
if dup < 0:
    print(f"inject: pidfd_getfd: {os.strerror(ctypes.get_errno())}")
    sys.exit(2)
os.write(dup, payload)
