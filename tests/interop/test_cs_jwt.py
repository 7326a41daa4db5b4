"""Interop: Confidential Space tokens made by independent tools are judged by our
verifier. The jose package (npm, pinned by jose/package-lock.json) signs the JWTs;
python3-cryptography makes the test keys, a root -> intermediate -> leaf x5c chain
(PKI tokens) and a JWKS (OIDC tokens); none of it shares code with ours. Each
token is handed byte for byte to jose/cs_jwt_driver (aln_cs_verify), which prints
the claims or the refusal. One valid token of each flavour must be accepted; every
other token carries one defect and must be refused with the status naming it.

jose is installed with `npm ci --prefix tests/interop/jose` (deploy/local/install-deps
does it; this test does it too if node_modules is missing). A missing node or npm
fails the test rather than skipping it: a skipped test proves nothing."""

import base64
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
JOSE_DIR = os.path.join(HERE, "jose")
DRIVER = os.environ.get("ALN_CS_JWT_DRIVER", "cs_jwt_driver")

ISS = "https://confidentialcomputing.googleapis.com"
AUD = "https://aileron.test/attest"
NOW = 1800000000
DIGEST = "sha256:" + "ab" * 32
BINDING = bytes(range(0x40, 0x60))  # 32 bytes, as the channel binding is


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint_b64url(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def ensure_jose():
    if os.path.exists(os.path.join(JOSE_DIR, "node_modules", "jose", "package.json")):
        return
    missing = [t for t in ("node", "npm") if shutil.which(t) is None]
    if missing:  # fail, not skip: a skipped test proves nothing
        raise RuntimeError(f"interop needs {', '.join(missing)} (Debian: nodejs npm) to install jose")
    subprocess.run(["npm", "ci", "--prefix", JOSE_DIR, "--no-audit", "--no-fund"], check=True,
                   stdout=subprocess.DEVNULL)


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_private(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()


def pem_public(k):
    return k.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def cert(subject, key, issuer=None, issuer_key=None, ca=False, not_after=datetime.datetime(2100, 1, 1)):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]) if issuer else name
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(datetime.datetime(2024, 1, 1)).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    signer = issuer_key or key
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
    return b.sign(signer, hashes.SHA256())


def der_b64(c):
    return base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()


def claims(**over):
    c = {
        "iss": ISS, "aud": AUD, "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600,
        "sub": "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i",
        "eat_nonce": BINDING.hex(), "secboot": True, "oemid": 11129, "hwmodel": "GCP_INTEL_TDX",
        "swname": "CONFIDENTIAL_SPACE", "swversion": ["250301"], "dbgstat": "disabled-since-boot",
        "submods": {"confidential_space": {"support_attributes": ["LATEST", "STABLE", "USABLE"]},
                    "container": {"image_reference": "europe-docker.pkg.dev/p/r/enclave:1", "image_digest": DIGEST}},
        "google_service_accounts": ["enclave@p.iam.gserviceaccount.com"],
    }
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


class ConfidentialSpaceJose(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_jose()
        cls.tmp = tempfile.mkdtemp(prefix="aln-cs-jwt-")
        cls.root_key, cls.mid_key, cls.leaf_key = rsa_key(), rsa_key(), rsa_key()
        cls.root = cert("Test CS Root", cls.root_key, ca=True)
        cls.mid = cert("Test CS Intermediate", cls.mid_key, "Test CS Root", cls.root_key, ca=True)
        cls.leaf = cert("Test CS Leaf", cls.leaf_key, "Test CS Intermediate", cls.mid_key)
        cls.x5c = [der_b64(cls.leaf), der_b64(cls.mid), der_b64(cls.root)]
        cls.root_pem = cls.root.public_bytes(serialization.Encoding.PEM).decode()
        other_key = rsa_key()
        cls.other_root_pem = cert("Test CS Root", other_key, ca=True).public_bytes(serialization.Encoding.PEM).decode()
        cls.oidc_key, cls.stranger_key = rsa_key(), rsa_key()
        n = cls.oidc_key.public_key().public_numbers()
        cls.jwks = {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "oidc-1",
                              "n": uint_b64url(n.n), "e": uint_b64url(n.e)}]}
        cls.tokens = cls.make_tokens()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def make_tokens(cls):
        pki = {"alg": "RS256", "typ": "JWT", "kid": "$thumbprint", "x5c": cls.x5c}
        oidc = {"alg": "RS256", "typ": "JWT", "kid": "oidc-1"}
        leaf, oidc_pem = pem_private(cls.leaf_key), pem_private(cls.oidc_key)
        pub = pem_public(cls.leaf_key)
        jwks_text = json.dumps(cls.jwks, separators=(",", ":"))

        def sign(name, hdr, key, **over):
            return {"name": name, "kind": "sign", "header": hdr, "claims": claims(**over), "key_pem": key,
                    "x5c_pub_pem": pub}

        jobs = [
            sign("pki_valid", pki, leaf),
            sign("oidc_valid", oidc, oidc_pem),
            sign("pki_debug", pki, leaf, dbgstat="enabled"),
            sign("pki_expired", pki, leaf, iat=NOW - 7200, nbf=NOW - 7200, exp=NOW - 3600),
            sign("pki_wrong_aud", pki, leaf, aud="https://someone.else"),
            sign("pki_no_nonce", pki, leaf, eat_nonce=None),
            sign("pki_wrong_digest", pki, leaf,
                 submods={"container": {"image_digest": "sha256:" + "cd" * 32},
                          "confidential_space": {"support_attributes": ["STABLE"]}}),
            sign("pki_kid_not_thumbprint", dict(pki, kid="oidc-1"), leaf),
            sign("oidc_unknown_kid", dict(oidc, kid="oidc-2"), pem_private(cls.stranger_key)),
            sign("oidc_wrong_key", oidc, pem_private(cls.stranger_key)),
            sign("oversized_payload", oidc, oidc_pem, pad="x" * 20000),
            sign("oversized_header", dict(oidc, pad="x" * 20000), oidc_pem),
            {"name": "alg_none", "kind": "none", "claims": claims()},
            {"name": "hs256_jwks", "kind": "hmac", "header": {"alg": "HS256", "kid": "oidc-1"}, "claims": claims(),
             "secret": jwks_text},
            {"name": "hs256_pem", "kind": "hmac", "header": {"alg": "HS256", "typ": "JWT", "kid": "$thumbprint",
                                                              "x5c": cls.x5c},
             "claims": claims(), "secret": pub, "x5c_pub_pem": pub},
            {"name": "dup_payload", "kind": "raw", "header": oidc, "key_pem": oidc_pem,
             # two "aud" members: the last would win in many parsers
             "payload": json.dumps(claims(aud="https://someone.else"))[:-1] + ', "aud": "' + AUD + '"}'},
        ]
        proc = subprocess.run(["node", os.path.join(JOSE_DIR, "make_tokens.mjs")], input=json.dumps(jobs),
                              capture_output=True, text=True, check=True, cwd=JOSE_DIR)
        tokens = json.loads(proc.stdout)
        # A duplicate key in the protected header: jose builds headers from objects,
        # so this one is handcrafted and signed with python3-cryptography.
        hdr = b'{"alg":"RS256","kid":"oidc-1","alg":"none"}'
        si = b64url(hdr) + "." + b64url(json.dumps(claims()).encode())
        sig = cls.oidc_key.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256())
        tokens["dup_header"] = si + "." + b64url(sig)
        return tokens

    def verify(self, token, **policy_over):
        policy = {"audience": AUD, "image_digests": [DIGEST], "hwmodels": ["GCP_INTEL_TDX", "GCP_AMD_SEV"],
                  "support_attributes": ["STABLE"], "allow_debug": False, "root_pem": self.root_pem,
                  "jwks": self.jwks, "nonce_hex": BINDING.hex(), "now": NOW, "skew": 60}
        policy.update(policy_over)
        fd, pol_path = tempfile.mkstemp(dir=self.tmp)
        with os.fdopen(fd, "w") as f:
            json.dump(policy, f)
        fd, tok_path = tempfile.mkstemp(dir=self.tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(token.encode())
        p = subprocess.run([DRIVER, pol_path, tok_path], capture_output=True, text=True, timeout=60)
        self.assertIn(p.returncode, (0, 2), p.stderr)
        return p.returncode == 0, json.loads(p.stdout)

    def assertRefused(self, name, status, fragment, **policy_over):
        ok, out = self.verify(self.tokens[name], **policy_over)
        self.assertFalse(ok, f"{name} accepted: {out}")
        self.assertEqual(out["status"], status, f"{name}: {out}")
        self.assertIn(fragment, out["why"], f"{name}: {out}")

    # --- accepted ----------------------------------------------------------------

    def test_valid_pki_token_accepted(self):
        ok, c = self.verify(self.tokens["pki_valid"])
        self.assertTrue(ok, c)
        self.assertEqual(c["kind"], "confidential-space")
        self.assertEqual(c["measurement"], DIGEST)
        self.assertFalse(c["debug"])
        self.assertTrue(c["nonce_checked"])
        self.assertEqual(c["issued_at"], NOW - 60)
        self.assertEqual(c["expires_at"], NOW + 3600)
        self.assertEqual(c["detail"]["token_type"], "PKI")
        self.assertEqual(c["detail"]["eat_nonce"], BINDING.hex())
        self.assertEqual(c["detail"]["support_attributes"], ["LATEST", "STABLE", "USABLE"])
        # jose computed the kid (RFC 7638); ours agreed, or the token would be refused.
        hdr = json.loads(base64.urlsafe_b64decode(self.tokens["pki_valid"].split(".")[0] + "=="))
        self.assertEqual(len(hdr["kid"]), 43)

    def test_valid_oidc_token_accepted(self):
        ok, c = self.verify(self.tokens["oidc_valid"])
        self.assertTrue(ok, c)
        self.assertEqual(c["detail"]["token_type"], "OIDC")
        self.assertEqual(c["measurement"], DIGEST)

    def test_debug_image_accepted_only_under_debug_policy(self):
        self.assertRefused("pki_debug", "ALN_ERR_ATTEST_DEBUG", "dbgstat")
        ok, c = self.verify(self.tokens["pki_debug"], allow_debug=True)
        self.assertTrue(ok, c)
        self.assertTrue(c["debug"])

    # --- refused ------------------------------------------------------------------

    def test_alg_none_refused(self):
        self.assertTrue(self.tokens["alg_none"].endswith("."))  # jose's unsecured JWT: no signature
        self.assertRefused("alg_none", "ALN_ERR_ATTEST_SIG", "alg none")

    def test_hs256_with_rsa_public_key_as_secret_refused(self):
        self.assertRefused("hs256_jwks", "ALN_ERR_ATTEST_SIG", "HS256")
        self.assertRefused("hs256_pem", "ALN_ERR_ATTEST_SIG", "HS256")

    def test_unknown_kid_refused(self):
        self.assertRefused("oidc_unknown_kid", "ALN_ERR_ATTEST_CHAIN", "unknown kid")
        self.assertRefused("oidc_wrong_key", "ALN_ERR_ATTEST_SIG", "does not verify")
        self.assertRefused("pki_kid_not_thumbprint", "ALN_ERR_ATTEST_CHAIN", "kid")

    def test_oversized_segments_refused(self):
        self.assertRefused("oversized_payload", "ALN_ERR_ATTEST_MALFORMED", "payload segment")
        self.assertRefused("oversized_header", "ALN_ERR_ATTEST_MALFORMED", "header segment")

    def test_duplicate_json_keys_refused(self):
        self.assertRefused("dup_payload", "ALN_ERR_ATTEST_MALFORMED", "payload")
        self.assertRefused("dup_header", "ALN_ERR_ATTEST_MALFORMED", "header")

    def test_expired_refused(self):
        self.assertRefused("pki_expired", "ALN_ERR_ATTEST_EXPIRED", "expired")
        # the valid token one second past exp + skew
        self.assertRefused("pki_valid", "ALN_ERR_ATTEST_EXPIRED", "expired", now=NOW + 3600 + 60)

    def test_wrong_aud_refused(self):
        self.assertRefused("pki_wrong_aud", "ALN_ERR_ATTEST_POLICY", "aud")
        self.assertRefused("pki_valid", "ALN_ERR_ATTEST_POLICY", "aud", audience="https://someone.else")

    def test_missing_eat_nonce_refused(self):
        self.assertRefused("pki_no_nonce", "ALN_ERR_ATTEST_BINDING", "eat_nonce")
        self.assertRefused("pki_valid", "ALN_ERR_ATTEST_BINDING", "binding", nonce_hex="ff" * 32)

    def test_wrong_image_digest_refused(self):
        self.assertRefused("pki_wrong_digest", "ALN_ERR_ATTEST_POLICY", "image digest")

    def test_swapped_root_refused(self):
        self.assertRefused("pki_valid", "ALN_ERR_ATTEST_CHAIN", "not trusted", root_pem=self.other_root_pem)


if __name__ == "__main__":
    unittest.main()
