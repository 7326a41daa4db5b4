"""Interop: AWS Nitro attestation documents made by independent implementations —
cbor2 for the CBOR, cryptography (OpenSSL underneath, none of our code) for the
test PKI and the ES384 signature — are put before our verifier, whose verdicts must
match what each document is. The verifier is driven through the nitro unit test
binary's driver mode (tests/unit/attestation/nitro_test.c, driver_main), found
beside the host binary's build tree. The other way round, the real AWS sample in
tests/data is verified here independently (chain signatures, document signature) and
its claims compared with what our verifier reports."""

import datetime
import json
import os
import subprocess
import tempfile
import unittest

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "attestation", "nitro")
T0 = 1700000000
NOW = T0 + 10
ES384 = -35
NONCE = bytes(range(0x80, 0xA0))


def driver_path():
    explicit = os.environ.get("ALN_NITRO_DRIVER")
    if explicit:
        return explicit
    host = os.environ.get("ALN_HOST_BIN", "")
    # <build>/host/aileron -> <build>/tests/unit_attestation_nitro_test
    return os.path.join(os.path.dirname(os.path.dirname(host)), "tests", "unit_attestation_nitro_test")


def utc(t):
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc).replace(tzinfo=None)


def make_cert(cn, key, issuer_cert, issuer_key, ca, not_before, not_after):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder()
         .subject_name(name)
         .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(utc(not_before))
         .not_valid_after(utc(not_after))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                      encipher_only=False, decipher_only=False), critical=True))
    return b.sign(issuer_key if issuer_key is not None else key, hashes.SHA384())


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def raw_es384(key, message):
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def sig_structure(protected, payload):
    return cbor2.dumps(["Signature1", protected, b"", payload])


class NitroInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.driver = driver_path()
        if not os.access(cls.driver, os.X_OK):
            raise AssertionError(f"nitro driver not found at {cls.driver} (build unit_attestation_nitro_test)")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root_key = ec.generate_private_key(ec.SECP384R1())
        cls.inter_key = ec.generate_private_key(ec.SECP384R1())
        cls.leaf_key = ec.generate_private_key(ec.SECP384R1())
        cls.root = make_cert("interop root", cls.root_key, None, None, True, T0 - 86400 * 365, T0 + 86400 * 365)
        cls.inter = make_cert("interop intermediate", cls.inter_key, cls.root, cls.root_key, True, T0 - 86400,
                              T0 + 86400)
        cls.leaf = make_cert("interop enclave", cls.leaf_key, cls.inter, cls.inter_key, False, T0 - 3600, T0 + 3600)
        cls.root_path = cls.write("root.der", der(cls.root))
        other_key = ec.generate_private_key(ec.SECP384R1())
        cls.other_root_path = cls.write(
            "other_root.der", der(make_cert("other root", other_key, None, None, True, T0 - 86400, T0 + 86400)))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def write(cls, name, data):
        path = os.path.join(cls.tmp.name, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    # --- building documents ---------------------------------------------------------

    def pcrs(self, debug=False):
        return {i: (bytes(48) if debug and i == 0 else bytes([0x10 + i]) * 48) for i in range(16)}

    def fields(self, **over):
        doc = {
            "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
            "digest": "SHA384",
            "timestamp": T0 * 1000 + 456,
            "pcrs": self.pcrs(),
            "certificate": der(self.leaf),
            "cabundle": [der(self.root), der(self.inter)],
            "public_key": None,
            "user_data": b"interop user data",
            "nonce": NONCE,
        }
        doc.update(over)
        return {k: v for k, v in doc.items() if v is not Ellipsis}

    def sign(self, payload, protected=None, key=None, tagged=False, unprotected=None):
        protected = cbor2.dumps({1: ES384}) if protected is None else protected
        sig = raw_es384(key or self.leaf_key, sig_structure(protected, payload))
        msg = [protected, {} if unprotected is None else unprotected, payload, sig]
        return cbor2.dumps(cbor2.CBORTag(18, msg) if tagged else msg)

    def doc(self, **over):
        return self.sign(cbor2.dumps(self.fields(**over)))

    # --- running the verifier ---------------------------------------------------------

    def verify(self, doc, root=None, at=NOW, nonce=NONCE, pcrs=None, allow_debug=False, bind=None, skew=0):
        path = self.write("doc.bin", doc)
        args = [self.driver, "--verify", path, "--at", str(at), "--skew", str(skew)]
        if root is not False:
            args += ["--root", root or self.root_path]
        if nonce is not None:
            args += ["--nonce", nonce.hex()]
        for index, value in (pcrs if pcrs is not None else {0: self.pcrs()[0], 3: self.pcrs()[3]}).items():
            args += ["--pcr", f"{index}={value.hex()}"]
        if allow_debug:
            args.append("--allow-debug")
        if bind:
            args += ["--bind", bind]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        self.assertIn(r.returncode, (0, 2), r.stderr)
        out = json.loads(r.stdout)
        return ("OK" if r.returncode == 0 else out["status"]), out

    def assertRefused(self, doc, status, **kw):
        verdict, out = self.verify(doc, **kw)
        self.assertEqual(verdict, status, out)
        return out

    # --- accepted -----------------------------------------------------------------------

    def test_valid_document_accepted_with_its_claims(self):
        verdict, c = self.verify(self.doc())
        self.assertEqual(verdict, "OK", c)
        self.assertEqual(c["kind"], "aws-nitro")
        self.assertFalse(c["debug"])
        self.assertTrue(c["nonce_checked"])
        self.assertEqual(c["measurement"], (bytes([0x10]) * 48).hex())
        self.assertEqual(c["issued_at"], T0)
        self.assertEqual(c["expires_at"], T0 + 3600)  # the leaf's notAfter, the earliest of the chain
        d = c["detail"]
        self.assertEqual(d["module_id"], "i-0123456789abcdef0-enc0123456789abcdef")
        self.assertEqual(d["digest"], "SHA384")
        self.assertEqual(d["timestamp_ms"], T0 * 1000 + 456)
        self.assertEqual(d["pcrs"], {str(i): v.hex() for i, v in self.pcrs().items()})
        self.assertEqual((d["has_public_key"], d["has_user_data"], d["has_nonce"]), (False, True, True))
        self.assertEqual(d["bound_to"], "nonce")

    def test_tagged_document_accepted(self):
        self.assertEqual(self.verify(self.sign(cbor2.dumps(self.fields()), tagged=True))[0], "OK")

    def test_optional_fields_absent_or_present(self):
        doc = self.doc(public_key=der(self.leaf)[:100], user_data=Ellipsis)
        verdict, c = self.verify(doc)
        self.assertEqual(verdict, "OK", c)
        self.assertEqual((c["detail"]["has_public_key"], c["detail"]["has_user_data"]), (True, False))

    def test_user_data_binding(self):
        doc = self.doc(user_data=NONCE, nonce=Ellipsis)
        self.assertRefused(doc, "ALN_ERR_ATTEST_BINDING")
        verdict, c = self.verify(doc, bind="user_data")
        self.assertEqual(verdict, "OK", c)
        self.assertEqual(c["detail"]["bound_to"], "user_data")

    # --- refused: appraisal ------------------------------------------------------------------

    def test_wrong_nonce(self):
        self.assertRefused(self.doc(), "ALN_ERR_ATTEST_BINDING", nonce=bytes(32))
        self.assertRefused(self.doc(nonce=b"\x00" + NONCE[1:]), "ALN_ERR_ATTEST_BINDING")

    def test_debug_document(self):
        doc = self.doc(pcrs=self.pcrs(debug=True))
        self.assertRefused(doc, "ALN_ERR_ATTEST_DEBUG")
        verdict, c = self.verify(doc, allow_debug=True, pcrs={3: self.pcrs()[3]})
        self.assertEqual(verdict, "OK", c)
        self.assertTrue(c["debug"])

    def test_wrong_pcr(self):
        self.assertRefused(self.doc(), "ALN_ERR_ATTEST_POLICY", pcrs={0: self.pcrs()[0], 3: bytes(48)})
        self.assertRefused(self.doc(), "ALN_ERR_ATTEST_POLICY", pcrs={20: bytes(48)})

    def test_expired_and_not_yet_valid(self):
        self.assertEqual(self.verify(self.doc(), at=T0 + 3599)[0], "OK")
        self.assertRefused(self.doc(), "ALN_ERR_ATTEST_EXPIRED", at=T0 + 3601)
        self.assertRefused(self.doc(), "ALN_ERR_ATTEST_EXPIRED", at=T0 - 3601, skew=86400)
        self.assertRefused(self.doc(timestamp=(NOW + 60) * 1000), "ALN_ERR_ATTEST_EXPIRED")

    # --- refused: signature and chain ------------------------------------------------------

    def test_signed_by_another_key(self):
        doc = self.sign(cbor2.dumps(self.fields()), key=ec.generate_private_key(ec.SECP384R1()))
        self.assertRefused(doc, "ALN_ERR_ATTEST_SIG")

    def test_der_signature_refused(self):
        # cryptography signs in DER; COSE wants R||S. A verifier that accepted both
        # would accept two encodings of every signature.
        payload = cbor2.dumps(self.fields())
        protected = cbor2.dumps({1: ES384})
        der_sig = self.leaf_key.sign(sig_structure(protected, payload), ec.ECDSA(hashes.SHA384()))
        self.assertRefused(cbor2.dumps([protected, {}, payload, der_sig]), "ALN_ERR_ATTEST_MALFORMED")

    def test_swapped_root(self):
        self.assertRefused(self.doc(), "ALN_ERR_ATTEST_CHAIN", root=self.other_root_path)
        self.assertRefused(self.doc(), "ALN_ERR_ATTEST_CHAIN", root=False)  # the pinned AWS root

    def test_chain_not_in_order(self):
        self.assertRefused(self.doc(cabundle=[der(self.inter), der(self.root)]), "ALN_ERR_ATTEST_CHAIN")
        self.assertRefused(self.doc(cabundle=[der(self.root)]), "ALN_ERR_ATTEST_CHAIN")

    # --- refused: encoding -----------------------------------------------------------------------

    def test_duplicate_key(self):
        fields = self.fields()
        # cbor2 writes maps from dicts, which cannot repeat a key: write the map by hand
        pairs = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in fields.items())
        extra = cbor2.dumps("nonce") + cbor2.dumps(bytes(32))
        payload = bytes([0xA0 + len(fields) + 1]) + pairs + extra
        self.assertRefused(self.sign(payload), "ALN_ERR_ATTEST_MALFORMED")

    def test_indefinite_map(self):
        pairs = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in self.fields().items())
        self.assertRefused(self.sign(b"\xbf" + pairs + b"\xff"), "ALN_ERR_ATTEST_MALFORMED")

    def test_critical_header(self):
        doc = self.sign(cbor2.dumps(self.fields()), protected=cbor2.dumps({1: ES384, 2: [33]}))
        out = self.assertRefused(doc, "ALN_ERR_ATTEST_MALFORMED")
        self.assertIn("crit", out["why"])

    def test_other_algorithms(self):
        for alg in (-7, -36, -8):
            doc = self.sign(cbor2.dumps(self.fields()), protected=cbor2.dumps({1: alg}))
            self.assertRefused(doc, "ALN_ERR_ATTEST_MALFORMED")

    def test_unprotected_header(self):
        doc = self.sign(cbor2.dumps(self.fields()), unprotected={4: b"kid"})
        self.assertRefused(doc, "ALN_ERR_ATTEST_MALFORMED")

    def test_truncated_and_padded(self):
        doc = self.doc()
        for n in (0, 1, 10, len(doc) // 2, len(doc) - 1):
            self.assertRefused(doc[:n], "ALN_ERR_ATTEST_MALFORMED")
        self.assertRefused(doc + b"\x00", "ALN_ERR_ATTEST_MALFORMED")

    # --- the real sample, checked both ways ----------------------------------------------------

    def test_real_document_independently_and_by_us(self):
        with open(os.path.join(DATA, "evervault_ga_2023-09-18.bin"), "rb") as f:
            raw = f.read()
        protected, unprotected, payload, sig = cbor2.loads(raw)
        self.assertEqual(cbor2.loads(protected), {1: ES384})
        self.assertEqual(unprotected, {})
        fields = cbor2.loads(payload)
        chain = [x509.load_der_x509_certificate(c) for c in fields["cabundle"]]
        leaf = x509.load_der_x509_certificate(fields["certificate"])
        with open(os.path.join(DATA, "aws_nitro_root_g1.pem"), "rb") as f:
            self.assertEqual(chain[0], x509.load_pem_x509_certificate(f.read()))
        # each entry signs the next, the last signs the certificate (raises if not)
        for issuer, cert in zip(chain, chain[1:] + [leaf]):
            issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                       ec.ECDSA(cert.signature_hash_algorithm))
        r, s = int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big")
        leaf.public_key().verify(encode_dss_signature(r, s), sig_structure(protected, payload),
                                 ec.ECDSA(hashes.SHA384()))
        # ... and our verifier, under the pinned root, reports the same document
        at = fields["timestamp"] // 1000
        verdict, c = self.verify(raw, root=False, at=at, nonce=fields["nonce"], allow_debug=True,
                                 pcrs={3: fields["pcrs"][3], 4: fields["pcrs"][4]})
        self.assertEqual(verdict, "OK", c)
        self.assertEqual(c["detail"]["module_id"], fields["module_id"])
        self.assertEqual(c["detail"]["pcrs"], {str(i): v.hex() for i, v in fields["pcrs"].items()})
        self.assertEqual(c["measurement"], fields["pcrs"][0].hex())
        self.assertTrue(c["debug"])
        not_after = int(leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp())
        self.assertEqual(c["expires_at"], not_after)
        self.assertEqual(c["issued_at"], at)
        self.assertEqual(c["detail"]["has_user_data"], fields["user_data"] is not None)
        self.assertEqual(c["detail"]["has_public_key"], fields["public_key"] is not None)
        self.assertRefused(raw, "ALN_ERR_ATTEST_DEBUG", root=False, at=at, nonce=fields["nonce"],
                           pcrs={3: fields["pcrs"][3]})
        self.assertRefused(raw, "ALN_ERR_ATTEST_EXPIRED", root=False, at=not_after + 1, nonce=fields["nonce"],
                           allow_debug=True, pcrs={3: fields["pcrs"][3]})


if __name__ == "__main__":
    unittest.main()
