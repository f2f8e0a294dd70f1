#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (docs/FUZZING.md).

fuzz/corpus/packet/   every datagram of docs/PROTOCOL.md's test vectors, of
                      all three suites (`packet:` of the seal- blocks, `recv:`
                      of the others), one file each, named after its block;
                      plain-*: the seal- datagrams with their plaintext in
                      place of the ciphertext (CBC: payload + PKCS#7 padding
                      and a zero MAC; AEAD: payload and a zero tag) for the
                      harness to seal; v1-data: a version 1 datagram
                      (Tests/vectors/squtun_v1.py), refused as old-version
fuzz/corpus/keyfile/  valid and invalid key files
fuzz/corpus/options/  command lines, one argument per line (NUL also separates)
fuzz/corpus/channel/  helper<->worker messages: one control byte (bits 0-1
                      the fd count, bits 2-3 how many fd numbers are held),
                      then the datagram (ChannelCodec.swift's format)
fuzz/corpus/offload/  mode byte 0 (cut): a virtio header and a TCP/UDP
                      super-packet; mode byte 1/3 (merge, UDP off/on):
                      packets behind 2-byte lengths, with valid checksums

Re-running it rewrites these seeds and leaves any other file (regression
seeds added by hand, named regress-*) alone. Usage: fuzz/make-corpus.py
"""
import os
import re
import struct
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
CORPUS = os.path.join(FUZZ, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def packets():
    text = open(os.path.join(ROOT, "docs", "PROTOCOL.md"), encoding="utf-8").read()
    seen = set()
    count = 0
    for block in re.findall(r"```vector\n(.*?)```", text, re.S):
        name = re.search(r"^name: (\S+)$", block, re.M).group(1)
        hexes = re.findall(r"^packet: ([0-9a-f]+)$", block, re.M)
        hexes += re.findall(r"^recv: (?:peer|other) ([0-9a-f]+)$", block, re.M)
        for i, h in enumerate(hexes):
            data = bytes.fromhex(h)
            if data in seen:
                continue
            seen.add(data)
            write("packet", "%s-%d" % (name, i), data)
            count += 1
    if count < 20:
        sys.exit("make-corpus: only %d datagrams found in docs/PROTOCOL.md" % count)
    # For the target's re-sealing check (B): the seal- datagrams with their
    # plaintext in place of the ciphertext and a zero MAC or tag, which the
    # harness seals before opening them. The suite byte says the layout.
    for block in re.findall(r"```vector\n(.*?)```", text, re.S):
        name = re.search(r"^name: (\S+)$", block, re.M).group(1)
        if not name.startswith("seal-"):
            continue
        packet = bytes.fromhex(re.search(r"^packet: ([0-9a-f]+)$", block, re.M).group(1))
        payload = bytes.fromhex(re.search(r"^payload: ?([0-9a-f]*)$", block, re.M).group(1))
        if packet[1] == 1:
            pad = 16 - len(payload) % 16
            plain = packet[:48] + payload + bytes([pad]) * pad + bytes(32)
        else:
            plain = packet[:32] + payload + bytes(16)
        write("packet", "plain-" + name[len("seal-"):], plain)
    # A version 1 datagram (the independent v1 implementation).
    sys.path.insert(0, os.path.join(ROOT, "Tests", "vectors"))
    import squtun_v1
    from squtun_common import PING, PSK, S_A
    write("packet", "v1-data", squtun_v1.seal(PSK, squtun_v1.TYPE_DATA, S_A, 1, 1795000000980, PING))


def keyfiles():
    key = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
    seeds = {
        "valid": key + "\n",
        "valid-no-newline": key,
        "valid-uppercase-crlf": key.upper() + "\r\n",
        "valid-whitespace": " \t" + key + " \n\n",
        "too-short": key[:62] + "\n",
        "too-long": key + "00\n",
        "inner-space": key[:32] + " " + key[32:] + "\n",
        "bad-character": key[:10] + "g" + key[11:] + "\n",
        "all-zero": "0" * 64 + "\n",
        "empty": "",
        "two-keys": key + "\n" + key + "\n",
        "nul": key[:20] + "\0" + key[21:],
    }
    for name, text in seeds.items():
        write("keyfile", name, text.encode("latin-1"))
    write("keyfile", "utf8", ("é" + key).encode("utf-8"))


def options():
    seeds = {
        "tunnel-a": "-l 3456 -p 198.51.100.2 -r 3457 -i tun0 -k /etc/squtun/tun0.key -a 59 -c 30",
        "tunnel-long": "--local-port 3457 --peer vpn.example.org --remote-port 3456 --interface tun1 "
                       "--key /etc/squtun/tun1.key --keepalive 25 --skew 0 --bind 2001:db8::1 --foreground "
                       "--user squtun --chroot /var/lib/squtun/empty --pidfile /run/t.pid --control /run/t.sock",
        "tunnel-equals": "--local-port=3456 -itun0 -k=key --peer=[2001:db8::2]",
        "mtu": "-m 1500",
        "mtu-ipv6": "-m 1500 --ipv6",
        "mtu-tap": "-m 1500 --tap --ipv6 --cipher aes-256-gcm",
        "tap": "-i tap0 --tap --no-offload -k /etc/squtun/tap0.key -p 198.51.100.2",
        "tap-server": "--server --tap --peers /etc/squtun/peers -k /k",
        "tap-client": "--tap --id c1 -i tap0 -k /k",
        "mtu-too-small": "-m 100",
        "ipv6-without-m": "--ipv6 -i tun0 -k k",
        "help": "-h",
        "missing-key": "-i tun0",
        "missing-all": "",
        "r-without-p": "-r 3457 -i tun0 -k k",
        "port-zero": "-l 0 -i tun0 -k k",
        "port-big": "-l 65536 -i tun0 -k k",
        "port-negative": "-l -5 -i tun0 -k k",
        "port-plus": "-l +5 -i tun0 -k k",
        "bad-host": "-p 10.0.0.256 -i tun0 -k k",
        "long-iface": "-i this-name-is-too-long -k k",
        "relative-chroot": "--chroot var/empty -i tun0 -k k",
        "bad-user": "-u -bad -i tun0 -k k",
        "skew-big": "-c 86401 -i tun0 -k k",
        "unknown-option": "--frobnicate -i tun0 -k k",
        "repeated": "-i tun0 -i tun1 -k a -k b",
        "positional": "genkey /etc/squtun/k",
    }
    for name, line in seeds.items():
        write("options", name, "\n".join(line.split(" ")).encode() if line else b"")
    # NUL-separated, an empty argument, and a non-UTF-8 byte.
    write("options", "nul-separated", b"-i\0tun0\0-k\0/k\0-b\0::1\0")
    write("options", "empty-key", b"-i\ntun0\n-k\n\n")
    write("options", "non-utf8", b"-i\ntun\xff\n-k\nk")


def channel():
    def config(session=1795000000500000000, start=1795000000600, skew=30, keepalive=25,
               uid=104, gid=65534, peer=None, chroot=b"/var/lib/squtun/empty", iface=b"tun0", flags=None,
               former=(), version=3, suite=1, key_id=0, idle=0, max_clients=0):
        if flags is None:
            flags = 2 if peer else 0
        body = struct.pack("<QQIIIII", session, start, skew, keepalive, flags, uid, gid)
        if peer is None:
            body += bytes(28)
        else:
            kind, port, addr, scope = peer
            body += struct.pack("<HH", kind, port) + addr.ljust(16, b"\0") + struct.pack("<II", scope, 0)
        body += chroot.ljust(256, b"\0") + iface.ljust(16, b"\0")
        assert len(body) == 336
        body += struct.pack("<I", len(former)) + b"".join(struct.pack("<Q", s) for s in former)
        body += bytes(8 * (32 - len(former)))
        if version >= 2:  # version 2 adds the cipher suite byte and 3 reserved bytes
            body += bytes([suite, 0, 0, 0])
        if version >= 3:  # version 3: a client's key id, a server's idle timeout and client limit
            body += struct.pack("<III", key_id, idle, max_clients)
        return b"\x01" + struct.pack("<I", version) + body

    v4 = (4, 3457, bytes([198, 51, 100, 2]), 0)
    v6 = (6, 3457, bytes.fromhex("20010db8000000000000000000000002"), 0)
    link_local = (6, 3457, bytes.fromhex("fe800000000000000000000000000001"), 2)
    mapped = (6, 3457, bytes.fromhex("00000000000000000000ffffc6336402"), 0)
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    # control byte: fd count | held << 2
    seeds = {
        "config-nopeer": b"\x00" + config(),
        "config-v4": b"\x00" + config(peer=v4),
        "config-v6": b"\x00" + config(peer=v6),
        "config-link-local": b"\x00" + config(peer=link_local),
        "config-mapped": b"\x00" + config(peer=mapped),
        "config-relative-chroot": b"\x00" + config(chroot=b"var/empty"),
        "config-old-drop-flag": b"\x00" + config(flags=1),
        "config-bad-flags": b"\x00" + config(flags=4),
        "config-bad-iface": b"\x00" + config(iface=b"tun/0"),
        "config-flag-without-peer": b"\x00" + config(flags=2),
        "config-former": b"\x00" + config(peer=v4, former=(7, 8, 9)),
        "config-version-1": b"\x00" + config(version=1),
        "config-gcm": b"\x00" + config(peer=v4, suite=2),
        "config-unknown-suite": b"\x00" + config(suite=9),
        "config-version-2": b"\x00" + config(version=2),
        "config-client": b"\x00" + config(peer=v4, key_id=0x1234abcd),
        "config-server": b"\x00" + config(flags=4, iface=b"sqc", idle=300, max_clients=1024),
        "config-server-with-key-id": b"\x00" + config(flags=4, key_id=5),
        "config-server-with-peer": b"\x00" + config(flags=6, peer=v4),
        "config-tap": b"\x00" + config(flags=0x0a, peer=v4, iface=b"tap0"),
        "config-tap-server": b"\x00" + config(flags=0x0c, iface=b"sqc"),
        "config-unknown-flag": b"\x00" + config(flags=0x12, peer=v4),
        "client-key": b"\x00\x09" + struct.pack("<I", 0x0a0b0c0d) + b"alice".ljust(32, b"\0") + key,
        "client-key-32": b"\x00\x09" + struct.pack("<I", 1) + b"x" * 32 + key,
        "client-key-bad-name": b"\x00\x09" + struct.pack("<I", 1) + b"../etc".ljust(32, b"\0") + key,
        "client-forget": b"\x00\x0a" + struct.pack("<I", 7),
        "client-tun": bytes([1 | 1 << 2]) + b"\x0b" + struct.pack("<I", 7) + b"sqc0".ljust(16, b"\0"),
        "client-tun-no-fd": b"\x00\x0b" + struct.pack("<I", 7) + b"sqc0".ljust(16, b"\0"),
        "client-refused": b"\x00\x0c" + struct.pack("<IB", 7, 3),
        "client-refused-bad": b"\x00\x0c" + struct.pack("<IB", 7, 0),
        "client-tun-request": b"\x00\x0d" + struct.pack("<I", 7) + struct.pack("<HH", 4, 3456) + bytes([198, 51, 100, 7]).ljust(16, b"\0") + bytes(8),
        "client-tun-request-mapped": b"\x00\x0d" + struct.pack("<I", 7) + struct.pack("<HH", 6, 3456) + bytes.fromhex("00000000000000000000ffffc6336407") + bytes(8),
        "client-closed": b"\x00\x0e" + struct.pack("<IB", 7, 1),
        "key": b"\x00\x02" + key,
        "key-short": b"\x00\x02" + key[:31],
        "fds": bytes([3 | 3 << 2]) + b"\x03\x03\x01\x02\x03",
        "fds-two": bytes([2 | 2 << 2]) + b"\x03\x02\x01\x02",
        "fds-one": bytes([1 | 1 << 2]) + b"\x03\x01\x03",
        "fds-missing": bytes([0]) + b"\x03\x03\x01\x02\x03",
        "fds-count-lies": bytes([3 | 1 << 2]) + b"\x03\x03\x01\x02\x03",
        "fds-role-twice": bytes([2 | 2 << 2]) + b"\x03\x02\x01\x01",
        "hello": b"\x00\x06\x01\x00\x00\x00",
        "key-request": b"\x00\x07",
        "fds-request": b"\x00\x08",
        "ready": b"\x00\x04",
        "ready-with-fd": bytes([1 | 1 << 2]) + b"\x04",
        "log": b"\x00\x05\x02worker: tunnel up, peer 198.51.100.2:3457",
        "log-utf8": b"\x00\x05\x01" + "schlüssel ✓".encode(),
        "log-control": b"\x00\x05\x00a\x1bb",
        "log-bad-level": b"\x00\x05\x07x",
        "log-max": b"\x00\x05\x03" + b"x" * 1024,
        "unknown-type": b"\x00\x0f",
        "unknown-type-high": b"\x00\xff",
        "empty": b"\x00",
    }
    for name, data in seeds.items():
        write("channel", name, data)


def csum(data, initial=0):
    """RFC 1071: big-endian 16-bit words, end-around carry (not complemented)."""
    if len(data) % 2:
        data += b"\0"
    total = initial
    for (w,) in struct.iter_unpack("!H", data):
        total += w
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ip_packet(v6, proto, transport, ident=0, ttl=64, df=True):
    """An IPv4/IPv6 packet around `transport` (its checksum field zero),
    the transport checksum and the IPv4 header checksum filled in."""
    if v6:
        src, dst = bytes.fromhex("20010db8" + "00" * 11 + "01"), bytes.fromhex("20010db8" + "00" * 11 + "02")
        ip = struct.pack("!IHBB", 6 << 28, len(transport), proto, ttl) + src + dst
    else:
        src, dst = bytes([10, 77, 0, 1]), bytes([10, 77, 0, 2])
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(transport), ident, 0x4000 if df else 0, ttl, proto, 0) + src + dst
        ip = ip[:10] + struct.pack("!H", 0xFFFF - csum(ip)) + ip[12:]
    at = 16 if proto == 6 else 6
    pseudo = csum(src + dst + struct.pack("!HH", proto, len(transport)))
    c = 0xFFFF - csum(transport, pseudo)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return ip + transport[:at] + struct.pack("!H", c) + transport[at + 2:]


def tcp(seq, payload, flags=0x10):
    options = bytes([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
    return struct.pack("!HHIIBBHHH", 40000, 5201, seq, 777, (20 + len(options)) // 4 << 4, flags, 512, 0, 0) + options + payload


def udp(payload, sport=5000):
    return struct.pack("!HHHH", sport, 9001, 8 + len(payload), 0) + payload


def vnet(flags, gso_type, hdr_len, gso_size, start, offset):
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, start, offset)


def offload():
    body = bytes(range(256)) * 20
    seeds = {
        "cut-tcp4": b"\x00" + vnet(1, 1, 52, 1000, 20, 16) + ip_packet(False, 6, tcp(1, body[:5000], 0x18)),
        "cut-tcp6": b"\x00" + vnet(1, 4, 72, 1200, 40, 16) + ip_packet(True, 6, tcp(9, body[:4801])),
        "cut-udp4": b"\x00" + vnet(1, 5, 28, 700, 20, 6) + ip_packet(False, 17, udp(body[:2101])),
        "partial-udp4": b"\x00" + vnet(1, 0, 0, 0, 20, 6) + ip_packet(False, 17, udp(body[:33])),
    }
    def batch(packets):
        return b"".join(struct.pack("!H", len(p)) + p for p in packets)
    seeds["merge-tcp4"] = b"\x01" + batch(
        [ip_packet(False, 6, tcp(1000 + 500 * i, body[i:i + 500], 0x18 if i == 5 else 0x10), ident=i) for i in range(6)]
        + [ip_packet(False, 1, bytes([8, 0, 0, 0, 0, 0, 0, 0]))])
    # Without DF the ids must follow on (Linux's GRO rule): ids 7, 8, then 8 again, 8.
    seeds["merge-tcp4-nodf-ids"] = b"\x01" + batch(
        [ip_packet(False, 6, tcp(1000 + 400 * i, body[i:i + 400]), ident=ident, df=False)
         for i, ident in enumerate((7, 8, 8, 8))])
    seeds["merge-tcp6-gap"] = b"\x01" + batch(
        [ip_packet(True, 6, tcp(s, body[:300])) for s in (1, 301, 700, 1000)])
    seeds["merge-udp6"] = b"\x03" + batch([ip_packet(True, 17, udp(body[i:i + 400])) for i in range(5)])
    seeds["merge-udp4-mixed"] = b"\x03" + batch(
        [ip_packet(False, 17, udp(body[:n], 7)) for n in (600, 600, 200, 600)]
        + [ip_packet(False, 6, tcp(5, body[:100]))])
    for name, data in seeds.items():
        write("offload", name, data)


def main():
    packets()
    keyfiles()
    options()
    channel()
    offload()
    for t in sorted(os.listdir(CORPUS)):
        print("%s: %d seeds" % (t, len(os.listdir(os.path.join(CORPUS, t)))))


if __name__ == "__main__":
    main()
