"""KEK recovery ceremony with the local provider, through the CLI only: a credential
stored through the host; `kek export-recovery` to an operator RSA-3072 key made by
the openssl CLI (a 2048-bit key refused, an existing file never overwritten, the KEK
nowhere in the file); the escrow alone copied to a new data dir without the KEK;
imports with another operator key or a modified file refused with nothing installed;
`kek import-recovery` with the right key installs the same KEK (0600) and refuses a
second time; an enclave on the new data dir, with the old one moved away, makes the
stored credential usable against nginx again. The same with the tpm provider across
two software TPMs: exported from a data dir sealed to one, imported (sealed anew,
no plaintext KEK file) on a fresh data dir of the other, where the credential works."""

import os
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import ENCLAVE_BIN, Stack, run, wait_for
from test_tpm_provider import SWTPM, port_open, two_free_ports

SECRET = b"sk-recover-aileron-TEST-5d4c3b2a19f8e7d6c5b4"


def openssl_rsa(d, name, bits):
    key, pub = f"{d}/{name}.key", f"{d}/{name}.pub"
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", key])
    run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub])
    return key, pub


def start_swtpm(d):
    """A fresh software TPM in |d|; returns (process, TCTI string, log file)."""
    os.makedirs(f"{d}/state")
    port = two_free_ports()
    log = open(f"{d}/swtpm.log", "wb")
    p = subprocess.Popen(
        [SWTPM, "socket", "--tpm2", "--tpmstate", f"dir={d}/state",
         "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
         "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
         "--flags", "not-need-init,startup-clear"], stdout=log, stderr=log)
    wait_for(lambda: port_open(port), timeout=10, what="swtpm")
    return p, f"swtpm:host=127.0.0.1,port={port}", log


def stop_proc(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


class KekRecovery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack()
        try:
            cls.s.cli("credential", "add", "reccred", "--bearer", "--allow", cls.s.upstream("/v1/"), "--ca",
                      cls.s.ca_crt, stdin=SECRET)
            # The operator's keys live outside every data dir (an offline machine, in reality).
            cls.op_dir = tempfile.mkdtemp(prefix="aileron-operator-")
            cls.op_key, cls.op_pub = openssl_rsa(cls.op_dir, "operator", 3072)
            cls.other_key, _ = openssl_rsa(cls.op_dir, "other", 3072)
            _, cls.small_pub = openssl_rsa(cls.op_dir, "small", 2048)
        except BaseException:
            cls.s.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.s.close()
        shutil.rmtree(cls.op_dir, ignore_errors=True)

    def kek(self, *args):
        return subprocess.run([ENCLAVE_BIN, "kek", *args], env=self.s.enclave_env, capture_output=True)

    def use_works(self):
        before = self.s.nginx_log()
        code, doc, raw = self.s.http("POST", "/v1/credentials/reccred/request",
                                     {"method": "GET", "url": self.s.upstream("/v1/recovered")},
                                     token=self.s.session())
        self.assertEqual(code, 200, raw)
        self.assertEqual(doc["status"], 200)
        self.assertIn("GET /v1/recovered auth=[Bearer " + SECRET.decode() + "]", self.s.nginx_log()[len(before):])
        self.assertNotIn(SECRET, raw)

    def test_local_recovery_on_a_new_data_dir(self):
        s = self.s
        old = s.enclave_dir
        rec = f"{s.dir}/kek.recovery"
        self.use_works()
        with open(f"{old}/kek", "rb") as f:
            old_kek = f.read()
        self.assertEqual(len(old_kek), 32)

        # A 2048-bit operator key is too weak: refused, nothing written.
        p = self.kek("export-recovery", "--to", self.small_pub, "--out", rec, "--data-dir", old)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"3072", p.stderr)
        self.assertFalse(os.path.exists(rec))

        p = self.kek("export-recovery", "--to", self.op_pub, "--out", rec, "--data-dir", old)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(rec).st_mode), 0o600)
        with open(rec, "rb") as f:
            blob = f.read()
        self.assertEqual(blob[:8], b"ALNKREC1")
        self.assertEqual(len(blob), 8 + 12 + 32 + 384 + 32)
        self.assertNotIn(old_kek, blob)
        p = self.kek("export-recovery", "--to", self.op_pub, "--out", rec, "--data-dir", old)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"never overwritten", p.stderr)
        with open(rec, "rb") as f:
            self.assertEqual(f.read(), blob)

        # The machine is lost: only the escrow database survives, copied to a new dir.
        s.stop_daemon()
        self.assertEqual(s.enclave.stop(), 0)
        new = f"{s.dir}/enclave-new"
        os.mkdir(new, 0o700)
        for fn in os.listdir(old):
            if fn != "kek":
                shutil.copy2(f"{old}/{fn}", f"{new}/{fn}")
        moved = f"{s.dir}/enclave-lost"
        os.rename(old, moved)

        # Another operator's key and a modified file are refused; nothing is installed.
        p = self.kek("import-recovery", rec, "--key", self.other_key, "--data-dir", new)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"another operator key", p.stderr)
        self.assertFalse(os.path.exists(f"{new}/kek"))
        bad = f"{s.dir}/kek.recovery.bad"
        with open(bad, "wb") as f:
            f.write(blob[:-1] + bytes([blob[-1] ^ 1]))
        p = self.kek("import-recovery", bad, "--key", self.op_key, "--data-dir", new)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"ALN_ERR_TAMPERED", p.stderr)
        self.assertFalse(os.path.exists(f"{new}/kek"))

        p = self.kek("import-recovery", rec, "--key", self.op_key, "--data-dir", new)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(f"{new}/kek").st_mode), 0o600)
        with open(f"{new}/kek", "rb") as f:
            self.assertEqual(f.read(), old_kek)
        self.assertFalse(any(fn.endswith(".key") or fn.endswith(".pem") for fn in os.listdir(new)))
        p = self.kek("import-recovery", rec, "--key", self.op_key, "--data-dir", new)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"move it away", p.stderr)

        # An enclave on the new data dir opens the stored credential.
        s.enclave_dir = new
        s.enclave = s._start([ENCLAVE_BIN, "serve", "--data-dir", new, "--listen", f"127.0.0.1:{s.enclave_port}"],
                             "enclave-new.log", env=s.enclave_env)
        wait_for(lambda: "listening on" in s.enclave.text() or s.enclave.p.poll() is not None, what="enclave")
        self.assertIsNone(s.enclave.p.poll(), s.enclave.text())
        s.start_daemon()
        self.use_works()


class TpmKekRecovery(unittest.TestCase):
    """Export from a data dir sealed to TPM A; import on a fresh data dir with TPM B."""

    def setUp(self):
        if not SWTPM:
            raise RuntimeError("swtpm is needed: run deploy/local/install-deps")
        self.dir = tempfile.mkdtemp(prefix="aileron-recovery-tpm-")
        self.tpms, self.s = [], None
        try:
            for name in ("a", "b"):
                self.tpms.append(start_swtpm(f"{self.dir}/{name}"))
            self.s = Stack(provider="tpm", enclave_env={"AILERON_TPM_TCTI": self.tpms[0][1]})
            self.s.cli("credential", "add", "reccred", "--bearer", "--allow", self.s.upstream("/v1/"), "--ca",
                       self.s.ca_crt, stdin=SECRET)
            self.op_key, self.op_pub = openssl_rsa(self.dir, "operator", 3072)
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        if self.s is not None:
            self.s.close()
        for p, _, log in self.tpms:
            stop_proc(p)
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_tpm_recovery_onto_another_tpm(self):
        s = self.s
        old, new, rec = s.enclave_dir, f"{s.dir}/enclave-new", f"{self.dir}/kek.recovery"
        KekRecovery.use_works(self)
        p = subprocess.run([ENCLAVE_BIN, "kek", "export-recovery", "--to", self.op_pub, "--out", rec,
                            "--data-dir", old], env=s.enclave_env, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)

        s.stop_daemon()
        self.assertEqual(s.enclave.stop(), 0)
        os.mkdir(new, 0o700)
        for fn in os.listdir(old):
            if fn not in ("kek.tpm", "ak.tpm"):  # both belong to TPM A and load nowhere else
                shutil.copy2(f"{old}/{fn}", f"{new}/{fn}")
        env_b = dict(s.enclave_env, AILERON_TPM_TCTI=self.tpms[1][1])
        # Without the KEK, TPM B cannot start on the copied escrow.
        p = subprocess.run([ENCLAVE_BIN, "host", "list", "--data-dir", new], env=env_b, capture_output=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(f"{new}/kek.tpm"))

        p = subprocess.run([ENCLAVE_BIN, "kek", "import-recovery", rec, "--key", self.op_key, "--data-dir", new],
                           env=env_b, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(f"{new}/kek.tpm", "rb") as f:
            self.assertEqual(f.read(8), b"ALNTPMK1")
        self.assertEqual(stat.S_IMODE(os.stat(f"{new}/kek.tpm").st_mode), 0o600)
        self.assertFalse(os.path.exists(f"{new}/kek"), "a plaintext KEK file was written")
        p = subprocess.run([ENCLAVE_BIN, "kek", "import-recovery", rec, "--key", self.op_key, "--data-dir", new],
                           env=env_b, capture_output=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"move it away", p.stderr)

        # TPM B has no rollback counter for this escrow: the start says so and waits
        # for the operator to vouch for the database once (step 3 of the ceremony).
        p = subprocess.run([ENCLAVE_BIN, "serve", "--data-dir", new, "--listen", "127.0.0.1:0"], env=env_b,
                           capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"AILERON_ACCEPT_ROLLBACK_RISK=1", p.stderr)
        env_b["AILERON_ACCEPT_ROLLBACK_RISK"] = "1"
        s.enclave_dir, s.enclave_env = new, env_b
        s.enclave = s._start([ENCLAVE_BIN, "serve", "--data-dir", new, "--listen", f"127.0.0.1:{s.enclave_port}"],
                             "enclave-new.log", env=env_b)
        wait_for(lambda: "listening on" in s.enclave.text() or s.enclave.p.poll() is not None, what="enclave")
        self.assertIsNone(s.enclave.p.poll(), s.enclave.text())
        # TPM B quotes with an AK of its own: the host's policy naming TPM A's AK
        # refuses it, and takes it once the operator enrolls the new AK.
        s.start_daemon()
        code, doc, raw = self.s.http("GET", "/v1/credentials", token=self.s.operator_token)
        self.assertEqual((code, doc["error"]["code"]), (502, "ALN_ERR_ATTEST_CHAIN"), raw)
        s.stop_daemon()
        s.policy = s.tpm_policy()
        s.start_daemon()
        KekRecovery.use_works(self)


if __name__ == "__main__":
    unittest.main()
