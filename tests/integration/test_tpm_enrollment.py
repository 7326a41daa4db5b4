"""TPM attestation-key enrollment by credential activation (issue 4), end to end: a
swtpm provisioned by swtpm_setup with an EK certificate from a swtpm-localca whose CA
lives in the test directory (the manufacturer, here), the tpm enclave, and a host
whose policy names that CA instead of pinning the AK. The host must check the EK
certificate against the CA, seal a secret to that EK and the AK's name, and get it
back from the enclave's TPM before it believes a single quote; under another CA it
must refuse, before any credential traffic."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import Stack, run
from test_tpm_provider import SwTpmStackCase

SECRET = b"sk-enroll-aileron-TEST-7a1c"


def provision(tpm_dir):
    """swtpm_setup with EK certificates issued by a local CA under |tpm_dir|/ca."""
    for name, text in {
        "localca.conf": f"statedir = {tpm_dir}/ca\nsigningkey = {tpm_dir}/ca/signkey.pem\n"
                        f"issuercert = {tpm_dir}/ca/issuercert.pem\ncertserial = {tpm_dir}/ca/certserial\n",
        "localca.options": "--platform-manufacturer Aileron\n--platform-version 2.1\n--platform-model test\n",
        "setup.conf": f"create_certs_tool = swtpm_localca\ncreate_certs_tool_config = {tpm_dir}/localca.conf\n"
                      f"create_certs_tool_options = {tpm_dir}/localca.options\n",
    }.items():
        with open(f"{tpm_dir}/{name}", "w") as f:
            f.write(text)
    os.makedirs(f"{tpm_dir}/ca", exist_ok=True)
    os.makedirs(f"{tpm_dir}/state", exist_ok=True)
    run(["swtpm_setup", "--tpm2", "--tpmstate", f"{tpm_dir}/state", "--create-ek-cert", "--config",
         f"{tpm_dir}/setup.conf", "--pcr-banks", "sha1,sha256", "--logfile", f"{tpm_dir}/setup.log"])
    return f"{tpm_dir}/ca/swtpm-localca-rootca-cert.pem", f"{tpm_dir}/ca/issuercert.pem"


class TpmEnrollment(SwTpmStackCase):
    tpm_prefix = "aileron-enroll-"

    @classmethod
    def setUpClass(cls):
        if shutil.which("swtpm_setup") is None:
            raise RuntimeError("swtpm_setup is needed: run deploy/local/install-deps")
        super().setUpClass()

    @classmethod
    def prepare_tpm(cls, tpm_dir):
        root, issuer = provision(tpm_dir)
        cls.ca_bundle = f"{tpm_dir}/ek-ca.pem"
        with open(cls.ca_bundle, "w") as out:
            for pem in (root, issuer):
                with open(pem) as f:
                    out.write(f.read())

    @classmethod
    def stack_ready(cls):
        cls.s.cli("credential", "add", "tpmcred", "--bearer", "--allow", cls.s.upstream("/v1/"), "--ca",
                  cls.s.ca_crt, stdin=SECRET)
        cls.token = cls.s.session()
        # The stack's own policy pins the AK; these replace the pin by the EK's CA.
        with open(cls.s.policy) as f:
            pinned = f.read()
        cls.pcrs = pinned[pinned.index("    pcrs:"):]

    def policy(self, name, ca):
        path = f"{self.tpm_dir}/{name}"
        with open(path, "w") as f:
            f.write(f"version: 1\nkinds:\n  tpm:\n    ek_ca_file: {ca}\n{self.pcrs}")
        return path

    def use(self):
        return self.s.http("POST", "/v1/credentials/tpmcred/request",
                           {"method": "GET", "url": self.s.upstream("/v1/enroll")}, token=self.token)

    def restart_daemon(self, policy):
        self.s.stop_daemon()
        self.s.start_daemon(policy=policy)

    def test_1_ak_enrolled_by_credential_activation(self):
        self.restart_daemon(self.policy("by-ca.yaml", self.ca_bundle))
        before = self.s.nginx_log()
        code, doc, raw = self.use()
        self.assertEqual(code, 200, raw)
        self.assertIn("GET /v1/enroll auth=[Bearer " + SECRET.decode() + "]", self.s.nginx_log()[len(before):])
        self.assertIn("enrolled the enclave's TPM attestation key by credential activation", self.s.daemon.text())
        status = self.s.cli("enclave", "status", "--json").stdout.decode()
        self.assertIn('"kind": "tpm"', status)

    def test_2_another_manufacturer_ca_is_refused(self):
        other = f"{self.tpm_dir}/other-ca"
        os.makedirs(other, exist_ok=True)
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{other}/ca.key", "-out",
             f"{other}/ca.pem", "-days", "2", "-subj", "/CN=not the manufacturer"])
        self.restart_daemon(self.policy("other-ca.yaml", f"{other}/ca.pem"))
        before = self.s.nginx_log()
        code, doc, raw = self.use()
        self.assertEqual((code, doc["error"]["code"]), (502, "ALN_ERR_ATTEST_CHAIN"), raw)
        self.assertEqual(self.s.nginx_log(), before, "a request left under an untrusted EK")
        self.assertRegex(self.s.daemon.text(), re.compile(r"TPM attestation key enrollment refused: .*ALN_ERR_ATTEST"))


if __name__ == "__main__":
    unittest.main()
