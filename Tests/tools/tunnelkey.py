#!/usr/bin/env python3
"""tunnelkey.py PRIVATE.key PEER.pub [PSKFILE]: the X25519 shared secret and
the tunnel key T of a squtun keypair setup, computed independently of
squtun with Python's cryptography package (the V2 design's "Keys"):

    T = HKDF-SHA256(salt "squtun v2 keypair", IKM X25519(priv, peer) || PSK (or 32 zeros),
                    info "squtun v2 tunnel key" || lo || hi, L 32)

Prints two lines, "shared HEX" and "tunnel HEX", for keyscan.py's hex:HEX."""
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def body(path, prefix):
    text = open(path).read().strip()
    if prefix:
        assert text.lower().startswith(prefix), f"{path} is not a {prefix}… key"
        text = text[len(prefix):]
    return bytes.fromhex(text)


def main():
    private = X25519PrivateKey.from_private_bytes(body(sys.argv[1], "squtun-private-"))
    peer = body(sys.argv[2], "squtun-public-")
    psk = body(sys.argv[3], "") if len(sys.argv) > 3 else bytes(32)
    own = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer))
    lo, hi = sorted([own, peer])
    t = HKDF(hashes.SHA256(), 32, b"squtun v2 keypair", b"squtun v2 tunnel key" + lo + hi).derive(shared + psk)
    print("shared", shared.hex())
    print("tunnel", t.hex())


if __name__ == "__main__":
    main()
