"""Interop: the enclave's local evidence, fetched live over its TLS port, is read and
verified by independent implementations — cbor2 for CBOR and cryptography (OpenSSL
underneath, but none of our code) for Ed25519 — against RFC 9052 (COSE_Sign1) and
RFC 9711 (EAT). Python's ssl module cannot export TLS keying material, so the
channel binding itself is checked by the host's own verifier (integration tests);
here we check the encoding and the signature any COSE verifier would check."""

import os
import sys
import time
import unittest

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import ATTEST, EnclaveConn, Stack, field_bytes, frame, make_client_identity, request, run  # noqa: E402

COSE_SIGN1_TAG = 18
EAT_NONCE, DBGSTAT, EAT_PROFILE, IAT = 10, 263, 265, 6


def parse_fields(raw):
    """Fields of a small protobuf message (length-delimited only)."""
    out, i = {}, 0
    while i < len(raw):
        key = raw[i]
        i += 1
        ln, shift = 0, 0
        while True:
            b = raw[i]
            i += 1
            ln |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out[key >> 3] = raw[i:i + ln]
        i += ln
    return out


class LocalEvidenceInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack()
        crt, key = make_client_identity(cls.s.dir, "interop-client")
        run([os.environ.get("ALN_ENCLAVE_BIN", "aileron-enclave"), "host", "enroll", crt,
             "--data-dir", cls.s.enclave_dir], env=cls.s.enclave_env)
        c = EnclaveConn(cls.s.enclave_port, crt, key)
        cls.nonce = os.urandom(32)
        c.send(frame(request(ATTEST, field_bytes(1, cls.nonce))))
        status, message, fields = c.recv_response()
        c.close()
        assert status == 0, message
        att = parse_fields(fields[ATTEST])
        cls.kind, cls.evidence, cls.pub = att[1].decode(), att[2], att[3]

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_kind_is_local(self):
        self.assertEqual(self.kind, "local")
        self.assertEqual(len(self.pub), 32)

    def test_cose_sign1_verifies_independently(self):
        tagged = cbor2.loads(self.evidence)
        self.assertIsInstance(tagged, cbor2.CBORTag)
        self.assertEqual(tagged.tag, COSE_SIGN1_TAG)
        protected, unprotected, payload, signature = tagged.value
        self.assertEqual(cbor2.loads(protected), {1: -8})  # alg: EdDSA
        self.assertEqual(unprotected, {})
        sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
        Ed25519PublicKey.from_public_bytes(self.pub).verify(signature, sig_structure)  # raises if invalid
        bad = bytearray(signature)
        bad[0] ^= 1
        with self.assertRaises(Exception):
            Ed25519PublicKey.from_public_bytes(self.pub).verify(bytes(bad), sig_structure)

    def test_eat_claims(self):
        payload = cbor2.loads(self.evidence).value[2]
        claims = cbor2.loads(payload)
        self.assertEqual(set(claims), {EAT_NONCE, DBGSTAT, EAT_PROFILE, IAT})
        self.assertEqual(len(claims[EAT_NONCE]), 32)
        self.assertNotEqual(claims[EAT_NONCE], self.nonce, "the nonce must be the binding, not the raw host nonce")
        self.assertEqual(claims[DBGSTAT], 0, "local evidence must say debug is enabled")
        self.assertEqual(claims[EAT_PROFILE], "tag:aileron.dev,2026:local-v1")
        self.assertLess(abs(claims[IAT] - time.time()), 120)

    def test_encoding_is_deterministic(self):
        # RFC 8949 §4.2.1 core deterministic encoding: re-encoding changes nothing.
        tagged = cbor2.loads(self.evidence)
        self.assertEqual(cbor2.dumps(tagged, canonical=True), self.evidence)
        payload = tagged.value[2]
        self.assertEqual(cbor2.dumps(cbor2.loads(payload), canonical=True), payload)


if __name__ == "__main__":
    unittest.main()
