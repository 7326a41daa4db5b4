"""The operator's view of attestation (issue 4) on the real stack: `aileron enclave
status` shows what the daemon appraised, `aileron enclave attest --save` keeps fresh
evidence of the enclave it uses, and `aileron evidence verify` appraises saved
evidence offline against a policy, with a distinct exit status for refusal (1) and
for errors (2). The enclave here is the local dev provider: its evidence is debug,
so a production policy must refuse it and the dev policy accept it."""

import json
import os
import subprocess
import unittest

from harness import HOST_BIN, Stack

DEV_POLICY = "version: 1\nkinds:\n  local:\n    allow_debug: true\n"
PROD_POLICY = "version: 1\nkinds:\n  local:\n    allow_debug: false\n"


class Attestation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack()
        cls.dev = cls.write("dev.yaml", DEV_POLICY)
        cls.prod = cls.write("prod.yaml", PROD_POLICY)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    @classmethod
    def write(cls, name, text, mode="w"):
        path = f"{cls.s.dir}/{name}"
        with open(path, mode) as f:
            f.write(text)
        return path

    def verify(self, *args):
        return subprocess.run([HOST_BIN, "evidence", "verify", *args], capture_output=True, timeout=60)

    def saved(self, name):
        """Fresh evidence saved by the CLI, and what it printed beside it."""
        path = f"{self.s.dir}/{name}"
        p = self.s.cli("enclave", "attest", "--save", path)
        meta = json.loads(p.stdout)
        with open(path, "rb") as f:
            return path, meta, f.read()

    def test_status_shows_the_appraised_claims(self):
        self.s.cli("credential", "list")  # the daemon has attested a connection by now
        doc = json.loads(self.s.cli("enclave", "status", "--json").stdout)
        self.assertEqual(doc["kind"], "local")
        self.assertIs(doc["debug"], True)
        self.assertIs(doc["nonce_checked"], True)
        self.assertEqual(len(doc["measurement"]), 64)  # the local kind vouches for its signing key
        self.assertGreater(doc["verified_at"], 1700000000)
        self.assertEqual(doc["reattest_seconds"], 600)
        text = self.s.cli("enclave", "status").stdout.decode()
        self.assertIn("kind local, DEBUG", text)
        code, doc, _ = self.s.http("GET", "/v1/enclave")
        self.assertEqual((code, doc["error"]["code"]), (401, "ALN_ERR_AUTH_MISSING"))

    def test_saved_evidence_verifies_offline_and_the_policy_decides(self):
        path, meta, ev = self.saved("ev-local.cbor")
        self.assertEqual(meta["kind"], "local")
        self.assertNotIn("evidence_b64", meta)
        self.assertTrue(ev.startswith(b"\xd2"))  # a tagged COSE_Sign1
        args = ["--kind", "local", "--nonce", meta["nonce_hex"], "--signing-key", meta["signing_key_hex"]]

        p = self.verify(*args, "--policy", self.dev, "--json", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        self.assertIs(doc["verified"], True)
        self.assertEqual(doc["claims"]["kind"], "local")
        self.assertIs(doc["claims"]["nonce_checked"], True)
        self.assertEqual(doc["claims"]["measurement"], meta["signing_key_hex"])

        # Refusals: exit 1, the status and the reason said.
        def refused(want, *more):
            p = self.verify(*more)
            self.assertEqual(p.returncode, 1, (more, p.stdout, p.stderr))
            self.assertIn(want.encode(), p.stderr)

        refused("ALN_ERR_ATTEST_DEBUG", *args, "--policy", self.prod, path)
        refused("ALN_ERR_ATTEST_BINDING", "--kind", "local", "--nonce", "00" * 32, "--signing-key",
                meta["signing_key_hex"], "--policy", self.dev, path)
        refused("ALN_ERR_ATTEST_KIND", "--kind", "sev-snp", "--policy", self.dev, path)
        refused("ALN_ERR_ATTEST_SIG", "--kind", "local", "--nonce", meta["nonce_hex"], "--signing-key", "00" * 32,
                "--policy", self.dev, path)
        flipped = bytearray(ev)
        flipped[len(flipped) // 2] ^= 1
        refused("ALN_ERR_ATTEST", *args, "--policy", self.dev, self.write("ev-flipped", bytes(flipped), "wb"))
        refused("ALN_ERR_ATTEST_MALFORMED", *args, "--policy", self.dev, self.write("ev-cut", ev[:-3], "wb"))
        refused("ALN_ERR_ATTEST_MALFORMED", *args, "--policy", self.dev, self.write("ev-pad", ev + b"\0", "wb"))

        # The refusal as JSON too.
        p = self.verify(*args, "--policy", self.prod, "--json", path)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(json.loads(p.stdout), {"verified": False, "status": "ALN_ERR_ATTEST_DEBUG",
                                                "reason": "debug evidence (dbgstat enabled) refused by the policy"})

        # Errors: exit 2.
        for more in (["--policy", f"{self.s.dir}/missing.yaml", path],
                     ["--policy", self.write("bad.yaml", "version: 1\nkinds: {local: {allow: 1}}\n"), path],
                     ["--policy", self.dev, f"{self.s.dir}/no-such-evidence"],
                     ["--policy", self.dev, "--nonce", "xyz", path],
                     ["--policy", self.dev, "--at", "yesterday", path],
                     ["--policy", self.dev]):
            p = self.verify("--kind", "local", *more)
            self.assertEqual(p.returncode, 2, (more, p.stderr))

    def test_attest_never_replaces_a_file(self):
        path = self.write("taken", "keep me")
        p = self.s.cli("enclave", "attest", "--save", path, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"never replaced", p.stderr)
        with open(path) as f:
            self.assertEqual(f.read(), "keep me")

    def test_each_saved_evidence_is_fresh(self):
        _, a, ev_a = self.saved("ev-a")
        _, b, ev_b = self.saved("ev-b")
        self.assertNotEqual(a["nonce_hex"], b["nonce_hex"])  # a new connection, a new binding
        self.assertNotEqual(ev_a, ev_b)


if __name__ == "__main__":
    unittest.main()
