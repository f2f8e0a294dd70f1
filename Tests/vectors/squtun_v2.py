#!/usr/bin/env python3
"""Independent reference implementation of squtun wire protocol v2.

Written from docs/PROTOCOL.md alone, with Python's `cryptography` package
instead of the Swift/OpenSSL code, so the two implementations check each
other (squtun_common.py holds what versions 1 and 2 share: the session
checks, suite 1's CBC and MAC, the vectors' common inputs). It makes the test vectors printed in docs/PROTOCOL.md and checks them:

    squtun_v2.py vectors          print the vector blocks (Markdown)
    squtun_v2.py check FILE.md    re-derive every vector in FILE.md; exit 1 on any mismatch
    squtun_v2.py compat           v1 and v2 side by side: every v2 datagram of a
                                  sweep is `malformed` to a v1 receiver
                                  (squtun_v1.py) and every v1 datagram is
                                  `old-version` to a v2 receiver
    squtun_v2.py seal KEYFILE SUITE SESSION COUNT OUT [FLAGS [KEY_ID]]
                                  seal COUNT data datagrams of SUITE (its name),
                                  an ICMP echo each, counters 1..COUNT, the
                                  current time, flags and key id as given
                                  (default 0), with the PSK of squtun key file
                                  KEYFILE into OUT, as squtun-attack stores
                                  datagrams (replay --in OUT sends them)

`check` prints a line per vector and ends with "vectors: N passed, M failed";
`compat` ends with "compat: N passed, M failed".
"""
import hashlib
import os
import struct
import sys
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from squtun_common import (NOW, PING, PSK, S_A, S_B, START, WINDOW, WRONG_PSK, Sessions, const_eq, flip, former_of,
                           icmp_echo, mac, make_iv, cbc_encrypt, cbc_decrypt, deliver, render, vector_blocks)

VERSION = 2
VERSION_1 = 1
CBC, GCM, CHACHA = 1, 2, 3
SUITE_NAMES = {CBC: "aes-256-cbc-hmac-sha256", GCM: "aes-256-gcm", CHACHA: "chacha20-poly1305"}
SUITE_BY_NAME = {v: k for k, v in SUITE_NAMES.items()}
TYPE_DATA, TYPE_KEEPALIVE = 1, 2
TYPE_NAMES = {TYPE_DATA: "data", TYPE_KEEPALIVE: "keepalive"}
FLAG_ETHERNET = 0x01          # flags bit 0: TAP mode; every other bit must be 0
# TAP mode's payloads: the ping in an Ethernet frame (unicast between two
# locally administered MACs, EtherType IPv4), and an ARP request (EtherType
# 0x0806: who has 10.9.0.2, tell 10.9.0.1), broadcast.
MAC_A, MAC_B = bytes.fromhex("020000000a01"), bytes.fromhex("020000000a02")
FRAME = MAC_B + MAC_A + b"\x08\x00" + PING
ARP_FRAME = (b"\xff" * 6 + MAC_A + b"\x08\x06" + bytes.fromhex("0001080006040001") + MAC_A
             + bytes([10, 9, 0, 1]) + bytes(6) + bytes([10, 9, 0, 2]))
HEADER = ">BBBBIQQQ"          # version, suite, type, flags, key id, session, counter, timestamp
HEADER_LEN = 32
MIN_LEN_ANY = HEADER_LEN
MAX_LEN = 65535
BLOCK, IV_LEN, MAC_LEN, TAG_LEN = 16, 16, 32, 16
CBC_OVERHEAD = HEADER_LEN + IV_LEN + MAC_LEN     # 80
CBC_MIN_LEN = CBC_OVERHEAD + BLOCK               # 96
AEAD_OVERHEAD = HEADER_LEN + TAG_LEN             # 48
SALT = b"squtun protocol v2"
INFO_PREFIX = b"squtun v2 session keys"
KP_SALT = b"squtun v2 keypair"
KEY_ID_LABEL = b"squtun v2 key id"
KP_INFO_PREFIX = b"squtun v2 tunnel key"


def okm_length(suite):
    return 96 if suite == CBC else 44


def derive(t, suite, session):
    """Session keys: (K_enc, K_mac, K_iv) for suite 1, (K, N_salt) for 2 and 3."""
    okm = HKDF(algorithm=hashes.SHA256(), length=okm_length(suite), salt=SALT,
               info=INFO_PREFIX + bytes([suite]) + struct.pack(">Q", session)).derive(t)
    if suite == CBC:
        return okm[0:32], okm[32:64], okm[64:96]
    return okm[0:32], okm[32:44]


def nonce(salt, counter):
    return bytes(a ^ b for a, b in zip(salt, b"\0\0\0\0" + struct.pack(">Q", counter)))


def aead(suite, key):
    return AESGCM(key) if suite == GCM else ChaCha20Poly1305(key)


def header(suite, ptype, session, counter, ts_ms, flags=0, key_id=0, version=VERSION):
    return struct.pack(HEADER, version, suite, ptype, flags, key_id, session, counter, ts_ms)


def seal(t, suite, ptype, session, counter, ts_ms, payload, flags=0, key_id=0, pad_override=None):
    """The datagram. flags and key_id are sealed as given (the vectors of
    checks 1c and 1d carry a valid MAC or tag, so nothing but the header
    check can refuse them). pad_override replaces the PKCS#7 padding of
    suite 1 (a datagram with a valid MAC and wrong padding)."""
    head = header(suite, ptype, session, counter, ts_ms, flags, key_id)
    if suite == CBC:
        k_enc, k_mac, k_iv = derive(t, suite, session)
        iv = make_iv(k_iv, session, counter)
        body = head + iv + cbc_encrypt(k_enc, iv, payload, pad_override)
        return body + mac(k_mac, body)
    key, salt = derive(t, suite, session)
    return head + aead(suite, key).encrypt(nonce(salt, counter), payload, head)


def well_formed_length(suite, n):
    if suite == CBC:
        return n >= CBC_MIN_LEN and (n - CBC_OVERHEAD) % BLOCK == 0
    return n >= AEAD_OVERHEAD


class Receiver:
    """A point-to-point receiver (key id 0) of one configured suite, in TUN
    mode or (`mode` FLAG_ETHERNET) in TAP mode: the checks of PROTOCOL.md
    section 'Receiving', in their order."""

    def __init__(self, t, suite, own_session, start_ms, skew_s, former=(), mode=0):
        self.t, self.suite = t, suite
        self.mode = mode            # 0: TUN, IP packets; FLAG_ETHERNET: TAP, Ethernet frames
        self.sessions = Sessions(own_session, start_ms, skew_s, former)

    def open(self, pkt, from_peer, now_ms):
        n = len(pkt)
        # 1a. length bounds, version
        if n < MIN_LEN_ANY or n > MAX_LEN:
            return "drop malformed"
        version, suite, ptype, flags, key_id, session, counter, ts = struct.unpack(HEADER, pkt[:HEADER_LEN])
        if version == VERSION_1:
            return "drop old-version"
        if version != VERSION:
            return "drop malformed"
        # 1b. this end's suite
        if suite != self.suite:
            return "drop wrong-suite"
        # 1c. type, reserved flag bits, then the device mode
        if ptype not in TYPE_NAMES or flags & ~FLAG_ETHERNET:
            return "drop malformed"
        if flags & FLAG_ETHERNET != self.mode:
            return "drop wrong-mode"
        # 1d. key id: point to point, only 0
        if key_id != 0:
            return "drop unknown-key"
        # 1e. the suite's length rule
        if not well_formed_length(suite, n):
            return "drop malformed"
        # 2, 3. reflection, older session
        drop = self.sessions.before_mac(session)
        if drop:
            return drop
        # 4. MAC (suite 1) or AEAD tag (2, 3; decrypts too, the plaintext is held back)
        failed = "drop bad-mac" if from_peer else "drop unknown-sender"
        if suite == CBC:
            k_enc, k_mac, _ = derive(self.t, suite, session)
            if not const_eq(mac(k_mac, pkt[:-MAC_LEN]), pkt[-MAC_LEN:]):
                return failed
        else:
            key, salt = derive(self.t, suite, session)
            try:
                plain = aead(suite, key).decrypt(nonce(salt, counter), pkt[HEADER_LEN:], pkt[:HEADER_LEN])
            except InvalidTag:
                return failed
        # 5, 6, 7. time, sent before this receiver started, replay window
        drop = self.sessions.after_mac(session, counter, ts, now_ms)
        if drop:
            return drop
        # 8. decrypt, 9. padding (suite 1 only)
        if suite == CBC:
            plain = cbc_decrypt(k_enc, pkt[HEADER_LEN:HEADER_LEN + IV_LEN], pkt[HEADER_LEN + IV_LEN:-MAC_LEN])
            if plain is None:
                return "drop malformed"
        # 10. type rules (of this end's mode); the change of state
        return deliver(self.sessions, ptype == TYPE_DATA, session, counter, plain,
                       ethernet=self.mode == FLAG_ETHERNET)


# ---------------------------------------------------------------- keypairs

class KeypairError(Exception):
    pass


def public_of(private):
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519(private, peer_public):
    """X25519(own private, peer public); refuses an all-zero result (the
    peer's key has low order)."""
    try:
        shared = X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:      # `cryptography` refuses the all-zero result itself
        raise KeypairError("the peer's public key has low order (X25519 result all zero)")
    if shared == bytes(32):
        raise KeypairError("the peer's public key has low order (X25519 result all zero)")
    return shared


def tunnel_key(own_private, peer_public, psk=b""):
    """T of a keypair setup, as one end computes it from its own private key
    and the peer's public key (and the optional PSK, 32 bytes or none)."""
    own_public = public_of(own_private)
    if own_public == peer_public:
        raise KeypairError("the peer's public key is this host's own")
    if psk and len(psk) != 32:
        raise KeypairError("a PSK is 32 bytes")
    shared = x25519(own_private, peer_public)
    lo, hi = sorted([own_public, peer_public])
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=KP_SALT,
                info=KP_INFO_PREFIX + lo + hi).derive(shared + (psk or bytes(32)))


# ---------------------------------------------------------------- vectors

# The same with 16 bytes of data: 44 bytes, so that an AEAD datagram is 92
# bytes long and passes version 1's length rule (92 - 76 = 16).
PING44 = icmp_echo("4500002ca1b34000400100000a0900010a090002080000000001000273717574756e212173717574756e2121")
# RFC 7748 section 6.1: Alice's and Bob's X25519 keys.
RFC7748_A = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC7748_B = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
RFC7748_SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


# ---------------------------------------------------------------- server mode: client key ids

def is_identifier(name):
    """1 to 32 bytes of A-Z a-z 0-9 . _ -, the first a letter or a digit."""
    b = name.encode()
    word = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return 1 <= len(b) <= 32 and b[0] in word and all(c in word + b"._-" for c in b)


def key_id_digest(name):
    return hashlib.sha256(KEY_ID_LABEL + name.encode()).digest()


def key_id(name):
    """A client's key id: the digest's first 4 bytes, big-endian; 0 is the
    point-to-point key id, so a client whose bytes are 0 gets 1."""
    return struct.unpack(">I", key_id_digest(name)[:4])[0] or 1


def key_id_block(name, show_hash=False):
    f = {"id": name}
    if show_hash:
        f["sha256"] = key_id_digest(name).hex()
    f["key_id"] = f"0x{key_id(name):08x}"
    return f


# Identifiers of the key id vectors: plain ones, the longest kind, two that
# share a key id (found by a birthday search over client-N), and one whose
# digest starts with four zero bytes (found by a search over zero-HEX).
KEY_ID_VECTORS = [("keyid-alice", "alice", True), ("keyid-bob", "bob", False),
                  ("keyid-dotted", "laptop-01.example", False),
                  ("keyid-32-bytes", "office_router.42-abcdefghijklmno", False),
                  ("keyid-shared-1", "client-29758", False), ("keyid-shared-2", "client-72069", False)]


def check_key_id(f):
    name = f["id"]
    ok = is_identifier(name) and f["key_id"] == f"0x{key_id(name):08x}"
    if "sha256" in f:
        digest = key_id_digest(name)
        ok = ok and f["sha256"] == digest.hex()
        # The hash shown is the one the key id comes from.
        ok = ok and int(f["key_id"], 16) == (int.from_bytes(digest[:4], "big") or 1)
    return ok


def set_byte(pkt, index, value):
    return pkt[:index] + bytes([value]) + pkt[index + 1:]


def short(suite):
    return {CBC: "cbc", GCM: "gcm", CHACHA: "chacha"}[suite]


def seal_block(suite, ptype, counter, ts, payload):
    f = {"suite": SUITE_NAMES[suite], "psk": PSK.hex(), "type": TYPE_NAMES[ptype], "session": S_A,
         "counter": counter, "timestamp_ms": ts, "payload": payload.hex()}
    keys = derive(PSK, suite, S_A)
    if suite == CBC:
        k_enc, k_mac, k_iv = keys
        f.update({"k_enc": k_enc.hex(), "k_mac": k_mac.hex(), "k_iv": k_iv.hex(),
                  "iv": make_iv(k_iv, S_A, counter).hex()})
    else:
        key, salt = keys
        f.update({"key": key.hex(), "nonce_salt": salt.hex(), "nonce": nonce(salt, counter).hex()})
    f["packet"] = seal(PSK, suite, ptype, S_A, counter, ts, payload).hex()
    return f


def keypair_block(private_a, private_b, psk):
    public_a, public_b = public_of(private_a), public_of(private_b)
    return {"private_a": private_a.hex(), "public_a": public_a.hex(),
            "private_b": private_b.hex(), "public_b": public_b.hex(), "psk": psk.hex(),
            "shared": x25519(private_a, public_b).hex(),
            "tunnel_key": tunnel_key(private_a, public_b, psk).hex()}


def build_vectors():
    """Each vector: sealing inputs and output, a keypair's tunnel key, or a
    sequence delivered to a fresh receiver with the expected outcome of
    each step."""
    v = []

    def seq(name, suite, steps, skew=30, former=None, mode=None):
        f = {"suite": SUITE_NAMES[suite], "psk": PSK.hex(), "own_session": S_B, "start_ms": START,
             "now_ms": NOW, "skew_s": skew}
        if former is not None:
            f["former_sessions"] = " ".join(str(s) for s in former)
        if mode is not None:
            f["mode"] = mode
        f["steps"] = steps
        v.append((name, f))

    peer, other = "peer", "other"
    for suite in (CBC, GCM, CHACHA):
        s = short(suite)

        def sl(ptype, counter, ts, payload, t=PSK, session=S_A, **kw):
            return seal(t, suite, ptype, session, counter, ts, payload, **kw)

        data = sl(TYPE_DATA, 0, NOW - 20, PING)
        ka = sl(TYPE_KEEPALIVE, 1, NOW - 10, b"")
        tag_at = len(data) - 1          # last byte: of the MAC (suite 1) or the tag
        ct_at = HEADER_LEN + (IV_LEN if suite == CBC else 0) + 6
        v.append((f"seal-data-{s}", seal_block(suite, TYPE_DATA, 0, NOW - 20, PING)))
        v.append((f"seal-keepalive-{s}", seal_block(suite, TYPE_KEEPALIVE, 1, NOW - 10, b"")))
        seq(f"accept-data-then-keepalive-{s}", suite, [(data, peer), (ka, peer)])
        seq(f"reject-truncated-{s}", suite, [(data[:-1], peer)])
        if suite != CBC:
            seq(f"accept-92-bytes-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, PING44), peer)])
        # Below the suite's shortest datagram (1e), and below any header (1a).
        seq(f"reject-too-short-{s}", suite, [(data[:(CBC_MIN_LEN if suite == CBC else AEAD_OVERHEAD) - 1], peer),
                                              (data[:HEADER_LEN - 1], peer)])
        seq(f"reject-tampered-header-{s}", suite, [(flip(data, 31), peer)])
        seq(f"reject-tampered-ciphertext-{s}", suite, [(flip(data, ct_at), peer)])
        seq(f"reject-tampered-{'mac' if suite == CBC else 'tag'}-{s}", suite, [(flip(data, tag_at, 0x80), peer)])
        seq(f"reject-wrong-key-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, PING, t=WRONG_PSK), peer)])
        seq(f"reject-wrong-key-unknown-sender-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, PING, t=WRONG_PSK), other)])
        seq(f"reject-reflected-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, PING, session=S_B), peer)])
        seq(f"reject-replay-{s}", suite, [(data, peer), (data, peer)])
        seq(f"reject-old-session-{s}", suite, [
            (data, peer), (sl(TYPE_DATA, 7, NOW - 5, PING, session=S_A - 1), peer)])
        seq(f"accept-newer-session-{s}", suite, [
            (data, peer), (sl(TYPE_DATA, 0, NOW - 5, PING, session=S_A + 1), peer), (data, peer)])
        seq(f"reject-time-skew-{s}", suite, [
            (sl(TYPE_DATA, 0, NOW - 30001, PING), peer), (sl(TYPE_DATA, 0, NOW + 30001, PING), peer),
            (sl(TYPE_DATA, 0, NOW + 30000, PING), peer)])
        seq(f"reject-sent-before-start-{s}", suite, [(sl(TYPE_DATA, 0, START - 1, PING), peer)])
        # The header checks 1c and 1d come before the MAC: these carry a valid one.
        seq(f"reject-wrong-mode-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, PING, flags=FLAG_ETHERNET), peer)])
        seq(f"reject-unknown-key-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, PING, key_id=1), peer)])
        seq(f"reject-reserved-flags-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, PING, flags=0x02), peer),
                                                   (sl(TYPE_DATA, 0, NOW - 20, PING, flags=0x81), peer)])
        seq(f"reject-unknown-type-{s}", suite, [(set_byte(data, 2, 3), peer)])
        seq(f"reject-version-3-{s}", suite, [(set_byte(data, 0, 3), peer), (set_byte(data, 0, 0), peer)])
        seq(f"reject-data-not-ip-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, bytes([0x50]) + PING[1:]), peer)])
        seq(f"reject-data-empty-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, b""), peer)])
        seq(f"reject-keepalive-nonempty-{s}", suite, [(sl(TYPE_KEEPALIVE, 0, NOW - 20, b"x"), peer)])
        # TAP mode: a receiver that takes flags bit 0 only. A frame (the ping
        # behind an Ethernet header), an ARP frame (not IP: fine at layer 2)
        # and a keepalive pass; a TUN datagram is wrong-mode; a payload
        # shorter than an Ethernet header is malformed.
        tap = dict(flags=FLAG_ETHERNET)
        seq(f"tap-accept-frames-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, FRAME, **tap), peer),
                                              (sl(TYPE_DATA, 1, NOW - 15, ARP_FRAME, **tap), peer),
                                              (sl(TYPE_KEEPALIVE, 2, NOW - 10, b"", **tap), peer)], mode="tap")
        seq(f"tap-reject-tun-datagram-{s}", suite, [(data, peer)], mode="tap")
        seq(f"tap-reject-short-frame-{s}", suite, [(sl(TYPE_DATA, 0, NOW - 20, FRAME[:13], **tap), peer),
                                                   (sl(TYPE_DATA, 1, NOW - 15, FRAME[:14], **tap), peer)],
            mode="tap")

    # A datagram of another suite, sealed with the right PSK, at a receiver
    # of suite 1; then one naming a suite number nobody defines.
    gcm = seal(PSK, GCM, TYPE_DATA, S_A, 0, NOW - 20, PING)
    seq("reject-wrong-suite", CBC, [(gcm, peer), (set_byte(gcm, 1, 9), peer),
                                    (seal(PSK, CBC, TYPE_DATA, S_A, 0, NOW - 20, PING), peer)])
    seq("reject-wrong-suite-aead", CHACHA, [(gcm, peer)])
    # A real v1 datagram (squtun_v1.py's sealing) at a v2 receiver.
    v1 = load_v1()
    seq("reject-old-version", CBC, [(v1.seal(PSK, v1.TYPE_DATA, S_A, 0, NOW - 20, PING), peer),
                                    (v1.seal(PSK, v1.TYPE_KEEPALIVE, S_A, 1, NOW - 10, b""), peer)])
    seq("reject-old-version-aead", GCM, [(v1.seal(PSK, v1.TYPE_DATA, S_A, 0, NOW - 20, PING), other)])

    # Suite 1 only: the receiver's further rules of v1, unchanged.
    def cbc(ptype, counter, ts, payload, session=S_A, **kw):
        return seal(PSK, CBC, ptype, session, counter, ts, payload, **kw)
    data = cbc(TYPE_DATA, 0, NOW - 20, PING)
    ka = cbc(TYPE_KEEPALIVE, 1, NOW - 10, b"")
    seq("reject-replay-outside-window-cbc", CBC, [
        (cbc(TYPE_KEEPALIVE, WINDOW + 5, NOW - 5, b""), peer),
        (cbc(TYPE_KEEPALIVE, 5, NOW - 5, b""), peer),
        (cbc(TYPE_KEEPALIVE, 6, NOW - 5, b""), peer)])
    seq("accept-time-skew-disabled-cbc", CBC, [(cbc(TYPE_DATA, 0, NOW - 86400000, PING), peer)], skew=0)
    seq("reject-reflected-former-session-cbc", CBC, [
        (data, peer), (cbc(TYPE_DATA, 0, NOW - 5, PING, session=S_A + 2), peer)], skew=0, former=[S_A + 2])
    seq("accept-established-sent-before-start-cbc", CBC, [
        (data, peer), (cbc(TYPE_DATA, 2, START - 1, PING), peer)])
    seq("reject-below-first-counter-sent-before-start-cbc", CBC, [
        (cbc(TYPE_DATA, 5, NOW - 20, PING), peer),
        (cbc(TYPE_DATA, 3, START - 1, PING), peer),
        (cbc(TYPE_DATA, 4, START, PING), peer)])
    seq("reject-newer-session-sent-before-start-cbc", CBC, [
        (data, peer), (cbc(TYPE_DATA, 0, START - 1, PING, session=S_A + 1), peer)])
    seq("accept-first-from-other-cbc", CBC, [(data, other)])
    seq("accept-roaming-from-other-cbc", CBC, [(data, peer), (ka, other)])
    seq("reject-bad-mac-no-peer-is-unknown-sender-cbc", CBC, [(flip(data, 50), other)])
    # 35 payload bytes + 13 bytes of wrong padding = 3 blocks, MAC valid.
    seq("reject-bad-padding-cbc", CBC, [(cbc(TYPE_DATA, 0, NOW - 20, PING[:-1], pad_override=bytes([12] * 12 + [13])), peer)])
    seq("reject-padding-too-long-cbc", CBC, [(cbc(TYPE_DATA, 0, NOW - 20, PING[:-1], pad_override=bytes([17] * 13)), peer)])

    # Keypairs: RFC 7748's keys without a PSK and with one; two keys of
    # our own (SHA-256 of a label) with a PSK, where B's public key sorts first.
    v.append(("keypair-rfc7748", keypair_block(RFC7748_A, RFC7748_B, b"")))
    v.append(("keypair-rfc7748-psk", keypair_block(RFC7748_A, RFC7748_B, PSK)))
    own_a = hashlib.sha256(b"squtun keypair vector a").digest()
    own_b = hashlib.sha256(b"squtun keypair vector b").digest()
    v.append(("keypair-psk", keypair_block(own_a, own_b, WRONG_PSK)))
    # Server mode: client key ids (printed in section 4, "Server mode: key ids").
    for name, ident, show in KEY_ID_VECTORS:
        v.append((name, key_id_block(ident, show)))
    return v


def load_v1():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import squtun_v1
    return squtun_v1


def receiver_of(f):
    mode = {"tun": 0, "tap": FLAG_ETHERNET}[f.get("mode", "tun")]
    return Receiver(bytes.fromhex(f["psk"]), SUITE_BY_NAME[f["suite"]], int(f["own_session"]), int(f["start_ms"]),
                    int(f["skew_s"]), former_of(f), mode)


def parse_doc(text):
    """Every vector block as (fields, steps)."""
    result = []
    for b in vector_blocks(text):
        f, steps = {}, []
        for line in b.strip().split("\n"):
            k, _, val = line.partition(":")
            val = val.strip()
            if k == "recv":
                src, _, hexpkt = val.partition(" ")
                steps.append([src, bytes.fromhex(hexpkt), None])
            elif k == "expect":
                steps[-1][2] = val
            else:
                f[k] = val
        result.append((f, steps))
    return result


def check_seal(f):
    suite = SUITE_BY_NAME[f["suite"]]
    t, session, counter = bytes.fromhex(f["psk"]), int(f["session"]), int(f["counter"])
    ptype = TYPE_DATA if f["type"] == "data" else TYPE_KEEPALIVE
    payload = bytes.fromhex(f["payload"])
    got = seal(t, suite, ptype, session, counter, int(f["timestamp_ms"]), payload)
    keys = derive(t, suite, session)
    if suite == CBC:
        k_enc, k_mac, k_iv = keys
        ok = (k_enc.hex(), k_mac.hex(), k_iv.hex(), make_iv(k_iv, session, counter).hex()) == \
             (f["k_enc"], f["k_mac"], f["k_iv"], f["iv"])
        ok = ok and len(got) == CBC_OVERHEAD + BLOCK * (len(payload) // BLOCK + 1)
    else:
        key, salt = keys
        ok = (key.hex(), salt.hex(), nonce(salt, counter).hex()) == (f["key"], f["nonce_salt"], f["nonce"])
        ok = ok and len(got) == AEAD_OVERHEAD + len(payload)
    # The datagram is the one sealed here, and a receiver takes it back.
    r = Receiver(t, suite, S_B, 0, 0)
    back = r.open(bytes.fromhex(f["packet"]), True, 0)
    want = "data " + payload.hex() if ptype == TYPE_DATA else "keepalive"
    return ok and got.hex() == f["packet"] and back == want


def check_keypair(f):
    a, b = bytes.fromhex(f["private_a"]), bytes.fromhex(f["private_b"])
    psk = bytes.fromhex(f["psk"])
    pub_a, pub_b = public_of(a), public_of(b)
    ok = pub_a.hex() == f["public_a"] and pub_b.hex() == f["public_b"]
    shared_a, shared_b = x25519(a, pub_b), x25519(b, pub_a)
    ok = ok and shared_a == shared_b and shared_a.hex() == f["shared"]
    if a == RFC7748_A and b == RFC7748_B:
        ok = ok and shared_a == RFC7748_SHARED
    t_a, t_b = tunnel_key(a, pub_b, psk), tunnel_key(b, pub_a, psk)
    ok = ok and t_a == t_b and t_a.hex() == f["tunnel_key"]
    # The PSK changes T (and so every key); the result is not the shared secret.
    other_psk = bytes(32) if psk else PSK
    return ok and tunnel_key(a, pub_b, other_psk) != t_a and t_a != shared_a


def check(path):
    """Re-derives every vector of the document independently; returns success."""
    failures = 0
    blocks = parse_doc(open(path).read())
    for f, steps in blocks:
        name = f.get("name", "?")
        try:
            if name.startswith("seal-"):
                ok = check_seal(f)
            elif name.startswith("keypair-"):
                ok = check_keypair(f)
            elif name.startswith("keyid-"):
                ok = check_key_id(f)
            else:
                r = receiver_of(f)
                ok = len(steps) > 0 and all(
                    r.open(pkt, src == "peer", int(f["now_ms"])) == exp for src, pkt, exp in steps)
        except (KeyError, ValueError, KeypairError) as e:
            print(f"  {name}: {type(e).__name__}: {e}")
            ok = False
        print(("ok      " if ok else "FAILED  ") + name)
        failures += 0 if ok else 1
    print(f"vectors: {len(blocks) - failures} passed, {failures} failed")
    return failures == 0 and len(blocks) > 0


def compat():
    """Each version's receiver given the other's datagrams: a v1 receiver
    (squtun_v1.py, an implementation of version 1 alone) refuses every v2
    datagram as malformed, and a v2 receiver of every suite counts every v1
    datagram as old-version; both types, payloads of 0 to 200 bytes (every
    length class of both formats). One count per datagram."""
    v1 = load_v1()
    passed = failed = 0
    by_rule = {"length": 0, "version": 0}
    for suite in (CBC, GCM, CHACHA):
        for p in range(0, 201):
            for ptype in (TYPE_DATA, TYPE_KEEPALIVE):
                pkt = seal(PSK, suite, ptype, S_A, p, NOW - 20, (PING + bytes(200))[:p])
                got = v1.Receiver(PSK, S_B, START, 30).open(pkt, True, NOW)
                if got == "drop malformed":
                    passed += 1
                    n = len(pkt)
                    by_rule["version" if n >= 92 and (n - 76) % 16 == 0 else "length"] += 1
                else:
                    failed += 1
                    print(f"FAILED  a v1 receiver made {got!r} of a {SUITE_NAMES[suite]} datagram of {len(pkt)} bytes")
    print(f"v1 receiver: {passed} v2 datagrams refused as malformed "
          f"({by_rule['length']} by the length rule, {by_rule['version']} by the version)")
    before = passed
    for p in range(0, 201):
        pkt = v1.seal(PSK, v1.TYPE_DATA if p else v1.TYPE_KEEPALIVE, S_A, p, NOW - 20, (PING + bytes(200))[:p])
        for suite in (CBC, GCM, CHACHA):
            got = Receiver(PSK, suite, S_B, START, 30).open(pkt, True, NOW)
            if got == "drop old-version":
                passed += 1
            else:
                failed += 1
                print(f"FAILED  a {SUITE_NAMES[suite]} receiver made {got!r} of a v1 datagram of {len(pkt)} bytes")
    print(f"v2 receivers: {passed - before} v1 datagrams counted as old-version")
    if by_rule["version"] == 0 or by_rule["length"] == 0:
        failed += 1
        print("FAILED  the sweep missed one of version 1's two refusals")
    print(f"compat: {passed} passed, {failed} failed")
    return failed == 0


def seal_file(key_path, suite_name, session, count, out, flags=0, key_id=0):
    """Datagrams of the right suite and key whose header a receiver must
    refuse (wrong-mode, unknown-key), for the e2e test t_versions.sh."""
    t = bytes.fromhex(open(key_path).read().strip())
    suite = SUITE_BY_NAME[suite_name]
    now = int(time.time() * 1000)
    with open(out, "wb") as f:
        for i in range(1, count + 1):
            d = seal(t, suite, TYPE_DATA, session, i, now, PING, flags=flags, key_id=key_id)
            f.write(struct.pack(">I", len(d)) + d)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "vectors":
        print(render(build_vectors(), receiver_of))
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2]) else 1)
    elif len(sys.argv) == 2 and sys.argv[1] == "compat":
        sys.exit(0 if compat() else 1)
    elif 7 <= len(sys.argv) <= 9 and sys.argv[1] == "seal":
        seal_file(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6],
                  *(int(a, 0) for a in sys.argv[7:]))
    else:
        print(__doc__)
        sys.exit(64)
