#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/record_fuzz.c: credential rows sealed the
way enclave/escrow.c seals them (AES-256-GCM data key wrapped by the KEK, both bound
to the v2 associated data), but made here with Python's cryptography package, so
the decoder is fuzzed from records an independent implementation produced. The KEK
is the fuzz target's fixed one (32 x 0x42). Run: make_record_seeds.py OUT_DIR"""

import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEK = bytes([0x42]) * 32


def ad(label, rid, version, kind, expires, name, binding):
    return (label + struct.pack(">QIIq", rid, version, kind, expires) + struct.pack(">I", len(name)) + name
            + struct.pack(">I", len(binding)) + binding)


def seal(key, plain, aad):
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plain, aad)


def row(rid, version, kind, expires, name, binding, secret, created=1700000000, revoked=0):
    dek = os.urandom(32)
    wk = seal(KEK, dek, ad(b"aileron-dek-v2", rid, version, kind, expires, name, binding))
    ct = seal(dek, secret, ad(b"aileron-cred-v2", rid, version, kind, expires, name, binding))
    out = struct.pack(">qqqqqB", rid, version, kind, created, expires, revoked)
    for f in (name, binding, wk, ct):
        out += struct.pack(">H", len(f)) + f
    return out


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    binding = bytes.fromhex("0801") + b"\x1a\x1chttps://api.example.com/v1/"
    seeds = {
        "bearer": row(1, 1, 1, 0, b"github.token", binding, b"ghp_" + b"x" * 36),
        "expiring": row(77, 3, 1, 1900000000, b"A-b_c.9", binding, b"s"),
        "long_secret": row(123456, 2, 1, 0, b"n" * 64, binding * 40, os.urandom(4096)),
        "revoked_flag": row(5, 1, 1, 0, b"old", binding, b"sk-live", revoked=1),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
