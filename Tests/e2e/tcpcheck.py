#!/usr/bin/python3
"""Byte-exact transfers for the offload test.

    tcpcheck.py serve ADDR PORT            accept one TCP connection, print "<bytes> <sha256>"
    tcpcheck.py send ADDR PORT BYTES SEED  send BYTES pseudo-random bytes, print "<bytes> <sha256>"
    tcpcheck.py udp-serve ADDR PORT N      receive N datagrams (10 s at most), print "<count> <sha256 of all>"
    tcpcheck.py udp-send ADDR PORT N SEED  send N datagrams of 1..1300 bytes, print "<count> <sha256 of all>"
    tcpcheck.py udp-burst ADDR PORT N SIZE SEED [gso]
                                           send N datagrams of SIZE bytes in bursts of 32 (with gso: each
                                           burst as one UDP_SEGMENT send), print "<count>"
    tcpcheck.py udp-check ADDR PORT N SIZE SEED
                                           receive them (until N or 3 s of silence), print "ok=<n> bad=<n>":
                                           bad = wrong size or content (merged, cut or corrupted wrongly)

For the first two pairs, the sender's and the receiver's lines must be equal: every byte crossed the
tunnel (segmented, sealed, opened, merged) unchanged and in order.
"""
import hashlib
import random
import socket
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def main(argv):
    mode, addr, port = argv[1], argv[2], int(argv[3])
    if mode == "serve":
        s = socket.socket(family(addr), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        s.settimeout(30)
        c, _ = s.accept()
        c.settimeout(30)
        h, n = hashlib.sha256(), 0
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
        print(n, h.hexdigest())
    elif mode == "send":
        total, seed = int(argv[4]), int(argv[5])
        data = random.Random(seed).randbytes(total)
        c = socket.create_connection((addr, port), timeout=30)
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        c.recv(1)  # the server closing
        print(total, hashlib.sha256(data).hexdigest())
    elif mode == "udp-serve":
        want = int(argv[4])
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.settimeout(10)
        h, n = hashlib.sha256(), 0
        try:
            while n < want:
                h.update(s.recv(65536))
                n += 1
        except socket.timeout:
            pass
        print(n, h.hexdigest())
    elif mode == "udp-send":
        count, seed = int(argv[4]), int(argv[5])
        r = random.Random(seed)
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        h = hashlib.sha256()
        for _ in range(count):
            d = r.randbytes(r.randint(1, 1300))
            s.sendto(d, (addr, port))
            h.update(d)
            time.sleep(0.002)
        print(count, h.hexdigest())
    elif mode == "udp-burst":
        count, size, seed = int(argv[4]), int(argv[5]), int(argv[6])
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        gso = len(argv) > 7 and argv[7] == "gso"
        if gso:
            s.setsockopt(socket.SOL_UDP, 103, size)  # UDP_SEGMENT
        s.connect((addr, port))
        for first in range(0, count, 32):
            burst = [datagram(seed, i, size) for i in range(first, min(first + 32, count))]
            if gso:
                s.send(b"".join(burst))
            else:
                for d in burst:
                    s.send(d)
            time.sleep(0.001)
        print(count)
    elif mode == "udp-check":
        count, size, seed = int(argv[4]), int(argv[5]), int(argv[6])
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.settimeout(3)
        ok = bad = 0
        try:
            while ok + bad < count:
                d = s.recv(65536)
                seq = int.from_bytes(d[:4], "big") if len(d) >= 4 else -1
                if len(d) == size and 0 <= seq < count and d == datagram(seed, seq, size):
                    ok += 1
                else:
                    bad += 1
        except socket.timeout:
            pass
        print(f"ok={ok} bad={bad}")
    else:
        sys.exit("usage: see the header")


def datagram(seed, seq, size):
    """Datagram seq of a burst: its number, then bytes that depend on it."""
    block = hashlib.sha256(f"{seed}:{seq}".encode()).digest()
    body = seq.to_bytes(4, "big") + block * (size // 32 + 1)
    return body[:size]


if __name__ == "__main__":
    main(sys.argv)
