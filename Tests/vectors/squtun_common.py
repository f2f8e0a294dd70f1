"""What squtun's wire protocol versions 1 and 2 have in common, for the two
Python reference implementations (squtun_v1.py, squtun_v2.py): the
receiver's session checks (2, 3, 5, 6, 7) and its change of state, the
primitives both versions' suite 1 uses, and the vectors' common inputs.
Written from docs/PROTOCOL.md (sections 2, 6 and 7 are the same in both
versions), not from the Swift code.
"""
import re
import struct

from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

WINDOW = 2048 - 64

PSK = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
WRONG_PSK = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
S_A = 1795000000000000000      # sender session (ns since the epoch at its start)
S_B = 1795000000500000000      # receiver's own session
START = 1795000000600          # receiver start, ms
NOW = 1795000001000            # receiver clock, ms


def make_iv(k_iv, session, counter):
    """AES-256-ECB(K_iv, session || counter): suite 1's IV."""
    enc = Cipher(algorithms.AES(k_iv), modes.ECB()).encryptor()
    return enc.update(struct.pack(">QQ", session, counter)) + enc.finalize()


def mac(k_mac, data):
    h = hmac.HMAC(k_mac, hashes.SHA256())
    h.update(data)
    return h.finalize()


def const_eq(a, b):
    h = 0
    for x, y in zip(a, b):
        h |= x ^ y
    return h == 0 and len(a) == len(b)


class Sessions:
    """A receiver's view of its own and its peer's sessions: checks 2 and 3
    (before the MAC), 5 to 7 (after it), and the change of state once every
    check passed."""

    def __init__(self, own_session, start_ms, skew_s, former=()):
        self.own, self.start_ms, self.skew_ms = own_session, start_ms, skew_s * 1000
        self.former = set(former)
        self.peer_session = None
        self.first = 0
        self.highest = None
        self.seen = set()

    def before_mac(self, session):
        # 2. our own session, of this run or a former one (reflection)
        if session == self.own or session in self.former:
            return "drop reflected"
        # 3. older than the current session
        if self.peer_session is not None and session < self.peer_session:
            return "drop old-session"
        return None

    def after_mac(self, session, counter, ts, now_ms):
        # 5. time skew
        if self.skew_ms and abs(ts - now_ms) > self.skew_ms:
            return "drop time-skew"
        # 6. a session being established, or a counter below the first one
        # accepted in the current session: not sent before this receiver started
        if self.skew_ms and (session != self.peer_session or counter < self.first) and ts < self.start_ms:
            return "drop replay"
        # 7. replay window, within the current session only
        if session == self.peer_session and self.highest is not None:
            if counter <= self.highest and (self.highest - counter >= WINDOW or counter in self.seen):
                return "drop replay"
        return None

    def commit(self, session, counter):
        if session != self.peer_session:
            self.peer_session, self.highest, self.seen, self.first = session, None, set(), counter
        self.seen.add(counter)
        self.highest = counter if self.highest is None else max(self.highest, counter)
        self.seen = {c for c in self.seen if self.highest - c < WINDOW}


def cbc_encrypt(k_enc, iv, payload, pad_override=None):
    """Suite 1's ciphertext: PKCS#7 padding (or pad_override, for the
    vectors of wrong padding under a valid MAC), then AES-256-CBC."""
    if pad_override is None:
        p = padding.PKCS7(128).padder()
        padded = p.update(payload) + p.finalize()
    else:
        padded = payload + pad_override
    enc = Cipher(algorithms.AES(k_enc), modes.CBC(iv)).encryptor()
    return enc.update(padded) + enc.finalize()


def cbc_decrypt(k_enc, iv, ciphertext):
    """Checks 8 and 9 of suite 1: the payload, or None when the padding is wrong."""
    dec = Cipher(algorithms.AES(k_enc), modes.CBC(iv)).decryptor()
    pt = dec.update(ciphertext) + dec.finalize()
    p = pt[-1]
    if not 1 <= p <= 16 or pt[-p:] != bytes([p]) * p:
        return None
    return pt[:-p]


ETHERNET_HEADER_LEN = 14


def deliver(sessions, is_data, session, counter, payload, ethernet=False):
    """Check 10 (data is one IPv4 or IPv6 packet, in TAP mode (`ethernet`)
    one Ethernet frame of at least its 14-byte header; a keepalive is
    empty), then the change of state and the outcome."""
    if is_data != (len(payload) > 0):
        return "drop malformed"
    if is_data and (len(payload) < ETHERNET_HEADER_LEN if ethernet else payload[0] >> 4 not in (4, 6)):
        return "drop malformed"
    sessions.commit(session, counter)
    return "data " + payload.hex() if is_data else "keepalive"


def inet_checksum(b):
    """RFC 1071 over an even number of bytes."""
    s = sum(struct.unpack(">%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def icmp_echo(hex_packet):
    """An IPv4 ICMP message with both checksums filled in (over the header,
    then over the whole ICMP message), so that a kernel would take it."""
    pkt = bytes.fromhex(hex_packet)
    h, icmp = bytearray(pkt[:20]), bytearray(pkt[20:])
    h[10:12] = b"\0\0"
    h[10:12] = struct.pack(">H", inet_checksum(bytes(h)))
    icmp[2:4] = b"\0\0"
    icmp[2:4] = struct.pack(">H", inet_checksum(bytes(icmp)))
    return bytes(h) + bytes(icmp)


# An IPv4 ICMP echo request 10.9.0.1 -> 10.9.0.2 with 8 bytes of data.
PING = icmp_echo("45000024a1b24000400100000a0900010a090002080000000001000173717574756e2121")


def flip(pkt, index, bit=0x01):
    b = bytearray(pkt)
    b[index] ^= bit
    return bytes(b)


def former_of(f):
    return [int(x) for x in str(f.get("former_sessions", "")).split()]


def render(vectors, receiver_of):
    """The vector blocks in Markdown. A sequence block's `steps` (datagram,
    source) are given in order to a fresh receiver_of(fields), whose outcome
    of each becomes its `expect:` line."""
    out = []
    for name, f in vectors:
        out.append("```vector")
        out.append(f"name: {name}")
        for k, val in f.items():
            if k == "steps":
                r = receiver_of(f)
                for pkt, src in val:
                    out.append(f"recv: {src} {pkt.hex()}")
                    out.append(f"expect: {r.open(pkt, src == 'peer', int(f['now_ms']))}")
            else:
                out.append(f"{k}: {val}")
        out.append("```")
        out.append("")
    return "\n".join(out)


def vector_blocks(text):
    """The text of every ```vector block of a Markdown document."""
    return re.findall(r"```vector\n(.*?)```", text, re.S)
