#!/usr/bin/env python3
"""Independent reference implementation of squtun wire protocol v1.

squtun speaks version 2 now (docs/PROTOCOL.md); this is the version 1 peer
of the compatibility checks, written from version 1 of that document (its
layout is summed up in Tests/vectors/v1-vectors.md), with Python's
`cryptography` package:

    squtun_v1.py vectors             print the v1 vector blocks (Markdown)
    squtun_v1.py check FILE.md       re-derive every v1 vector in FILE.md
                                     (Tests/vectors/v1-vectors.md); exit 1 on any mismatch
    squtun_v1.py check-v2 FILE.md    give every version 2 datagram of FILE.md
                                     (docs/PROTOCOL.md) to a v1 receiver: each
                                     must be dropped as malformed
    squtun_v1.py seal KEYFILE SESSION COUNT OUT
                                     seal COUNT v1 data datagrams (an ICMP echo,
                                     counters 1..COUNT, the current time) with
                                     the PSK of squtun key file KEYFILE into OUT,
                                     as squtun-attack stores datagrams
                                     (replay --in OUT sends them)

`check` prints a line per vector and ends with "vectors-v1: N passed, M failed";
`check-v2` ends with "v1-receiver: N passed, M failed".
"""
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from squtun_common import (NOW, PING, PSK, S_A, S_B, START, WINDOW, WRONG_PSK, Sessions, const_eq, flip, former_of,
                           mac, make_iv, cbc_encrypt, cbc_decrypt, deliver, render, vector_blocks)

VERSION = 1
TYPE_DATA, TYPE_KEEPALIVE = 1, 2
HEADER_LEN, IV_LEN, BLOCK, MAC_LEN = 28, 16, 16, 32
OVERHEAD = HEADER_LEN + IV_LEN + MAC_LEN
MIN_LEN = OVERHEAD + BLOCK
MAX_LEN = 65535
SALT = b"squtun protocol v1"
INFO_PREFIX = b"squtun v1 session keys"
TYPE_NAMES = {TYPE_DATA: "data", TYPE_KEEPALIVE: "keepalive"}


def derive(psk, session):
    okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=SALT,
               info=INFO_PREFIX + struct.pack(">Q", session)).derive(psk)
    return okm[0:32], okm[32:64], okm[64:96]


def seal(psk, ptype, session, counter, ts_ms, payload, pad_override=None):
    """Returns the datagram. pad_override replaces the PKCS#7 padding (for
    the bad-padding vector: a packet with a valid MAC and wrong padding)."""
    k_enc, k_mac, k_iv = derive(psk, session)
    header = struct.pack(">BBHQQQ", VERSION, ptype, 0, session, counter, ts_ms)
    iv = make_iv(k_iv, session, counter)
    body = header + iv + cbc_encrypt(k_enc, iv, payload, pad_override)
    return body + mac(k_mac, body)


class Receiver:
    """The receiver's checks, in the order of version 1's section 'Receiving'."""

    def __init__(self, psk, own_session, start_ms, skew_s, former=()):
        self.psk = psk
        self.sessions = Sessions(own_session, start_ms, skew_s, former)

    def open(self, pkt, from_peer, now_ms):
        n = len(pkt)
        # 1. length and header syntax
        if n < MIN_LEN or n > MAX_LEN or (n - OVERHEAD) % BLOCK:
            return "drop malformed"
        version, ptype, reserved, session, counter, ts = struct.unpack(">BBHQQQ", pkt[:HEADER_LEN])
        if version != VERSION or ptype not in TYPE_NAMES or reserved != 0:
            return "drop malformed"
        # 2, 3. reflection, older session
        drop = self.sessions.before_mac(session)
        if drop:
            return drop
        # 4. MAC with the sender session's keys
        k_enc, k_mac, _ = derive(self.psk, session)
        if not const_eq(mac(k_mac, pkt[:-MAC_LEN]), pkt[-MAC_LEN:]):
            return "drop bad-mac" if from_peer else "drop unknown-sender"
        # 5, 6, 7. time, sent before this receiver started, replay window
        drop = self.sessions.after_mac(session, counter, ts, now_ms)
        if drop:
            return drop
        # 8. decrypt, 9. padding
        payload = cbc_decrypt(k_enc, pkt[HEADER_LEN:HEADER_LEN + IV_LEN], pkt[HEADER_LEN + IV_LEN:-MAC_LEN])
        if payload is None:
            return "drop malformed"
        # 10. type rules; the change of state
        return deliver(self.sessions, ptype == TYPE_DATA, session, counter, payload)


# ---------------------------------------------------------------- vectors

def build_vectors():
    """Each vector: sealing inputs and output, or a sequence delivered to a
    fresh receiver with the expected outcome of each step."""
    v = []
    data = seal(PSK, TYPE_DATA, S_A, 0, NOW - 20, PING)
    ka = seal(PSK, TYPE_KEEPALIVE, S_A, 1, NOW - 10, b"")
    k_enc, k_mac, k_iv = derive(PSK, S_A)
    v.append(("seal-data", {
        "psk": PSK.hex(), "type": "data", "session": S_A, "counter": 0, "timestamp_ms": NOW - 20,
        "payload": PING.hex(), "k_enc": k_enc.hex(), "k_mac": k_mac.hex(), "k_iv": k_iv.hex(),
        "iv": make_iv(k_iv, S_A, 0).hex(), "packet": data.hex()}))
    v.append(("seal-keepalive", {
        "psk": PSK.hex(), "type": "keepalive", "session": S_A, "counter": 1, "timestamp_ms": NOW - 10,
        "payload": "", "k_enc": k_enc.hex(), "k_mac": k_mac.hex(), "k_iv": k_iv.hex(),
        "iv": make_iv(k_iv, S_A, 1).hex(), "packet": ka.hex()}))

    def seq(name, steps, skew=30, former=None):
        f = {"psk": PSK.hex(), "own_session": S_B, "start_ms": START, "now_ms": NOW, "skew_s": skew}
        if former is not None:
            f["former_sessions"] = " ".join(str(s) for s in former)
        f["steps"] = steps
        v.append((name, f))

    peer = "peer"
    seq("accept-data-then-keepalive", [(data, peer), (ka, peer)])
    seq("reject-truncated", [(data[:-1], peer)])
    seq("reject-too-short", [(data[:91], peer)])
    seq("reject-unknown-version", [(bytes([2]) + data[1:], peer)])
    seq("reject-unknown-type", [(data[:1] + bytes([3]) + data[2:], peer)])
    seq("reject-reserved-bits", [(data[:3] + bytes([1]) + data[4:], peer)])
    seq("reject-tampered-ciphertext", [(flip(data, 50), peer)])
    seq("reject-tampered-header", [(flip(data, 27), peer)])
    seq("reject-tampered-mac", [(flip(data, len(data) - 1, 0x80), peer)])
    seq("reject-wrong-key", [(seal(WRONG_PSK, TYPE_DATA, S_A, 0, NOW - 20, PING), peer)])
    seq("reject-wrong-key-unknown-sender", [(seal(WRONG_PSK, TYPE_DATA, S_A, 0, NOW - 20, PING), "other")])
    seq("reject-reflected", [(seal(PSK, TYPE_DATA, S_B, 0, NOW - 20, PING), peer)])
    seq("reject-replay", [(data, peer), (data, peer)])
    seq("reject-replay-outside-window", [
        (seal(PSK, TYPE_KEEPALIVE, S_A, WINDOW + 5, NOW - 5, b""), peer),
        (seal(PSK, TYPE_KEEPALIVE, S_A, 5, NOW - 5, b""), peer),
        (seal(PSK, TYPE_KEEPALIVE, S_A, 6, NOW - 5, b""), peer)])
    seq("reject-old-session", [
        (data, peer),
        (seal(PSK, TYPE_DATA, S_A - 1, 7, NOW - 5, PING), peer)])
    seq("accept-newer-session", [
        (data, peer),
        (seal(PSK, TYPE_DATA, S_A + 1, 0, NOW - 5, PING), peer),
        (data, peer)])
    seq("reject-time-skew-past", [(seal(PSK, TYPE_DATA, S_A, 0, NOW - 30001, PING), peer)])
    seq("reject-time-skew-future", [(seal(PSK, TYPE_DATA, S_A, 0, NOW + 30001, PING), peer)])
    seq("accept-time-skew-limit", [(seal(PSK, TYPE_DATA, S_A, 0, NOW + 30000, PING), peer)])
    seq("accept-time-skew-disabled", [(seal(PSK, TYPE_DATA, S_A, 0, NOW - 86400000, PING), peer)], skew=0)
    # This end's former run (session S_A, older than S_B): its datagrams sent
    # back are refused even with the time checks off; the peer's are not.
    seq("reject-reflected-former-session", [
        (data, peer),
        (seal(PSK, TYPE_DATA, S_A + 2, 0, NOW - 5, PING), peer)], skew=0, former=[S_A + 2])
    seq("reject-sent-before-start", [(seal(PSK, TYPE_DATA, S_A, 0, START - 1, PING), peer)])
    # Check 6 holds while a session is established, not after.
    seq("accept-established-sent-before-start", [
        (data, peer),
        (seal(PSK, TYPE_DATA, S_A, 2, START - 1, PING), peer)])
    # ... but not for counters below the first one accepted: those were
    # possibly sent before this receiver started (recorded, replayed).
    seq("reject-below-first-counter-sent-before-start", [
        (seal(PSK, TYPE_DATA, S_A, 5, NOW - 20, PING), peer),
        (seal(PSK, TYPE_DATA, S_A, 3, START - 1, PING), peer),
        (seal(PSK, TYPE_DATA, S_A, 4, START, PING), peer)])
    seq("reject-newer-session-sent-before-start", [
        (data, peer),
        (seal(PSK, TYPE_DATA, S_A + 1, 0, START - 1, PING), peer)])
    # No peer known yet: any address is "other" (peer discovery); then the
    # peer roams: an authenticated datagram from another address is taken.
    seq("accept-first-from-other", [(data, "other")])
    seq("accept-roaming-from-other", [(data, peer), (ka, "other")])
    seq("reject-bad-mac-no-peer-is-unknown-sender", [(flip(data, 50), "other")])
    # An authenticated data payload that is not an IP packet.
    seq("reject-data-not-ip", [(seal(PSK, TYPE_DATA, S_A, 0, NOW - 20, bytes([0x50]) + PING[1:]), peer)])
    # 35 payload bytes + 13 bytes of wrong padding = 3 blocks, MAC valid.
    seq("reject-bad-padding", [(seal(PSK, TYPE_DATA, S_A, 0, NOW - 20, PING[:-1], bytes([12] * 12 + [13])), peer)])
    seq("reject-padding-too-long", [(seal(PSK, TYPE_DATA, S_A, 0, NOW - 20, PING[:-1], bytes([17] * 13)), peer)])
    seq("reject-data-empty", [(seal(PSK, TYPE_DATA, S_A, 0, NOW - 20, b""), peer)])
    seq("reject-keepalive-nonempty", [(seal(PSK, TYPE_KEEPALIVE, S_A, 0, NOW - 20, b"x"), peer)])
    return v


def parse_doc(text):
    blocks = vector_blocks(text)
    result = []
    for b in blocks:
        lines = [l.split(": ", 1) if ": " in l else [l.rstrip(":"), ""] for l in b.strip().split("\n")]
        result.append(lines)
    return result


def check(path):
    """Re-derives every vector of the document independently; returns failures."""
    failures = 0
    blocks = parse_doc(open(path).read())
    for lines in blocks:
        f = {}
        steps = []
        for k, val in lines:
            if k == "recv":
                src, hexpkt = val.split(" ", 1) if " " in val else (val, "")
                steps.append([src, bytes.fromhex(hexpkt), None])
            elif k == "expect":
                steps[-1][2] = val
            else:
                f[k] = val
        name = f["name"]
        if name.startswith("seal-"):
            psk = bytes.fromhex(f["psk"])
            ptype = TYPE_DATA if f["type"] == "data" else TYPE_KEEPALIVE
            got = seal(psk, ptype, int(f["session"]), int(f["counter"]), int(f["timestamp_ms"]),
                       bytes.fromhex(f["payload"]))
            k_enc, k_mac, k_iv = derive(psk, int(f["session"]))
            ok = (got.hex() == f["packet"] and k_enc.hex() == f["k_enc"] and k_mac.hex() == f["k_mac"]
                  and k_iv.hex() == f["k_iv"] and make_iv(k_iv, int(f["session"]), int(f["counter"])).hex() == f["iv"])
        else:
            r = Receiver(bytes.fromhex(f["psk"]), int(f["own_session"]), int(f["start_ms"]), int(f["skew_s"]),
                         former_of(f))
            ok = all(r.open(pkt, src == "peer", int(f["now_ms"])) == exp for src, pkt, exp in steps)
        print(("ok      " if ok else "FAILED  ") + name)
        failures += 0 if ok else 1
    print(f"vectors-v1: {len(blocks) - failures} passed, {failures} failed")
    return failures == 0 and len(blocks) > 0


def check_v2(path):
    """What a v1 peer makes of a v2 peer: every datagram of the v2 document
    that a v2 sender sends (version byte 2: the sealed `packet`s and the
    `recv` datagrams) given to a fresh v1 receiver, from the peer's address,
    with the block's PSK and clock. Check 1 (length rule, version) must
    refuse each as malformed, so nothing reaches the v1 end's tun."""
    passed = failed = 0
    by_rule = {"length": 0, "version": 0}
    for lines in parse_doc(open(path).read()):
        f = {k: val for k, val in lines if k not in ("recv", "expect")}
        packets = [bytes.fromhex(val.split(" ", 1)[1]) for k, val in lines if k == "recv" and " " in val]
        if "packet" in f:
            packets.append(bytes.fromhex(f["packet"]))
        psk = bytes.fromhex(f["psk"]) if "psk" in f else PSK
        now = int(f.get("now_ms", NOW))
        for pkt in packets:
            if len(pkt) == 0 or pkt[0] != 2:
                continue
            r = Receiver(psk, int(f.get("own_session", S_B)), int(f.get("start_ms", START)), int(f.get("skew_s", 30)))
            got = r.open(pkt, True, now)
            if got == "drop malformed":
                passed += 1
                n = len(pkt)
                by_rule["length" if n < MIN_LEN or n > MAX_LEN or (n - OVERHEAD) % BLOCK else "version"] += 1
            else:
                failed += 1
                print(f"FAILED  {f.get('name', '?')}: a v1 receiver made {got!r} of a v2 datagram of {len(pkt)} bytes")
    print(f"v2 datagrams refused by the length rule: {by_rule['length']}, by the version: {by_rule['version']}")
    # Both ways of refusing must have been seen, or half of check 1 went untested.
    for rule, count in by_rule.items():
        if count == 0:
            failed += 1
            print(f"FAILED  no v2 datagram in {path} is refused by the {rule} rule")
    print(f"v1-receiver: {passed} passed, {failed} failed")
    return failed == 0 and passed > 0


def seal_file(key_path, session, count, out):
    """What a v1 squtun sharing KEYFILE's PSK would send, for the e2e test
    of a v2 squtun receiving it (t_versions.sh)."""
    psk = bytes.fromhex(open(key_path).read().strip())
    now = int(time.time() * 1000)
    with open(out, "wb") as f:
        for i in range(1, count + 1):
            d = seal(psk, TYPE_DATA, session, i, now, PING)
            f.write(struct.pack(">I", len(d)) + d)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "vectors":
        print(render(build_vectors(), lambda f: Receiver(PSK, f["own_session"], f["start_ms"], f["skew_s"], former_of(f))))
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2]) else 1)
    elif len(sys.argv) == 3 and sys.argv[1] == "check-v2":
        sys.exit(0 if check_v2(sys.argv[2]) else 1)
    elif len(sys.argv) == 6 and sys.argv[1] == "seal":
        seal_file(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        print(__doc__)
        sys.exit(64)
