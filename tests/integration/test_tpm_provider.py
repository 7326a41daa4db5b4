"""The tpm provider against a real software TPM (swtpm, started here): the KEK is
sealed to the TPM under a PCR 7 policy in kek.tpm (0600, no plaintext kek file);
credentials stored through the host open after a restart; the data dir alone, under
the local provider, opens nothing; and once PCR 7 is extended the enclave refuses
to start at once with a clear message, leaving kek.tpm and escrow.db untouched.
The tests run in order (test_1 .. test_4): each builds on the state the last left."""

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from harness import ENCLAVE_BIN, Stack, free_port, wait_for

SECRET = b"sk-tpm-aileron-TEST-3b8e1d7c6a5f4e2d1c0b9a8f"
SWTPM = shutil.which("swtpm")
PCREXTEND = shutil.which("tpm2_pcrextend")


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def two_free_ports():
    for _ in range(50):
        p = free_port()
        if p < 65535 and not port_open(p + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p + 1))
                except OSError:
                    continue
            return p
    raise RuntimeError("no two consecutive free ports")


def dir_snapshot(d):
    out = {}
    for fn in sorted(os.listdir(d)):
        with open(os.path.join(d, fn), "rb") as f:
            out[fn] = f.read()
    return out


class TpmProvider(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Missing tools fail the test rather than skip it: a skipped test proves nothing.
        if not (SWTPM and PCREXTEND):
            raise RuntimeError("swtpm and tpm2_pcrextend are needed: run deploy/local/install-deps")
        cls.tpm_dir = None
        cls.swtpm = None
        cls.s = None
        cls.tpm_dir = tempfile.mkdtemp(prefix="aileron-swtpm-")
        os.makedirs(f"{cls.tpm_dir}/state")
        cls.port = two_free_ports()
        cls.swtpm_log = open(f"{cls.tpm_dir}/swtpm.log", "wb")
        cls.swtpm = subprocess.Popen(
            [SWTPM, "socket", "--tpm2", "--tpmstate", f"dir={cls.tpm_dir}/state",
             "--server", f"type=tcp,port={cls.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={cls.port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"], stdout=cls.swtpm_log, stderr=cls.swtpm_log)
        try:
            wait_for(lambda: port_open(cls.port), timeout=10, what="swtpm")
            cls.tcti = f"swtpm:host=127.0.0.1,port={cls.port}"
            cls.s = Stack(provider="tpm", enclave_env={"AILERON_TPM_TCTI": cls.tcti})
            cls.s.cli("credential", "add", "tpmcred", "--bearer", "--allow", cls.s.upstream("/v1/"), "--ca",
                      cls.s.ca_crt, stdin=SECRET)
            cls.token = cls.s.session()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.s is not None:
            cls.s.close()
        if cls.swtpm is not None:
            cls.swtpm.terminate()
            try:
                cls.swtpm.wait(10)
            except subprocess.TimeoutExpired:
                cls.swtpm.kill()
                cls.swtpm.wait()
            cls.swtpm_log.close()
        if cls.tpm_dir is not None and os.environ.get("ALN_KEEP_TEST_DIR") != "1":
            shutil.rmtree(cls.tpm_dir, ignore_errors=True)

    # ---- helpers ------------------------------------------------------------
    def use(self):
        return self.s.http("POST", "/v1/credentials/tpmcred/request",
                           {"method": "GET", "url": self.s.upstream("/v1/tpm")}, token=self.token)

    def assert_use_works(self):
        before = self.s.nginx_log()
        code, doc, raw = self.use()
        self.assertEqual(code, 200, raw)
        self.assertEqual(doc["status"], 200)
        self.assertIn("GET /v1/tpm auth=[Bearer " + SECRET.decode() + "]", self.s.nginx_log()[len(before):])
        self.assertNotIn(SECRET, raw)

    def start_enclave(self, data_dir, env, port, log):
        p = self.s._start([ENCLAVE_BIN, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"], log,
                          env=env)
        wait_for(lambda: "listening on" in p.text() or p.p.poll() is not None, what="enclave")
        self.assertIsNone(p.p.poll(), p.text())
        return p

    def restart_tpm_enclave(self):
        """Stops daemon and enclave, starts the enclave again on the same data dir,
        swtpm and port, then the daemon."""
        self.s.stop_daemon()
        self.assertEqual(self.s.enclave.stop(), 0)
        self.s.enclave = self.start_enclave(self.s.enclave_dir, self.s.enclave_env, self.s.enclave_port,
                                            f"enclave-{len(self.s.procs)}.log")
        self.s.start_daemon()

    # ---- tests, in order ----------------------------------------------------
    def test_1_first_start_seals_to_the_tpm(self):
        d = self.s.enclave_dir
        st = os.stat(f"{d}/kek.tpm")
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        with open(f"{d}/kek.tpm", "rb") as f:
            blob = f.read()
        self.assertEqual(blob[:8], b"ALNTPMK1")
        self.assertFalse(os.path.exists(f"{d}/kek"), "a plaintext KEK file was written")
        self.assertIn("provider tpm", self.s.enclave.text())
        self.assert_use_works()
        type(self).blob = blob

    def test_2_restart_unseals_the_same_kek(self):
        self.restart_tpm_enclave()
        self.assert_use_works()
        with open(f"{self.s.enclave_dir}/kek.tpm", "rb") as f:
            self.assertEqual(f.read(), self.blob, "kek.tpm was rewritten")

    def test_3_data_dir_alone_opens_nothing(self):
        # Nothing in the data dir is a bare 32-byte key, nor holds the secret.
        for name, data in self.s.enclave_files():
            self.assertNotEqual(len(data), 32, f"{name} is exactly KEK-sized")
            self.assertNotIn(SECRET, data, name)
        # A copy of the data dir run with the file-KEK provider and any other KEK: the
        # stored credential fails authentication, the key was only in the TPM. (Without
        # a kek file the local provider refuses to start beside an existing escrow.)
        copy = f"{self.s.dir}/enclave-copy"
        shutil.copytree(self.s.enclave_dir, copy)
        os.chmod(copy, 0o700)
        fd = os.open(f"{copy}/kek", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)
        port = free_port()
        # A copy has no epoch history of its own: give it a fresh epoch file (the
        # real one is authenticated under the TPM's KEK and would rightly refuse).
        local_env = dict(self.s.enclave_env, AILERON_TEE_PROVIDER="local", AILERON_EPOCH_FILE=f"{self.s.dir}/epoch-copy",
                         AILERON_ACCEPT_ROLLBACK_RISK="1")
        del local_env["AILERON_TPM_TCTI"]
        self.s.stop_daemon()
        p = self.start_enclave(copy, local_env, port, "enclave-local-copy.log")
        real_port, self.s.enclave_port = self.s.enclave_port, port
        try:
            self.s.start_daemon()
            self.assertEqual(os.path.getsize(f"{copy}/kek"), 32)
            before = self.s.nginx_log()
            code, doc, raw = self.use()
            self.assertEqual(doc["error"]["code"], "ALN_ERR_TAMPERED", raw)
            self.assertEqual(code, 500)
            self.assertEqual(self.s.nginx_log(), before, "a request left without the real KEK")
        finally:
            self.s.stop_daemon()
            p.stop()
            self.s.enclave_port = real_port
            self.s.start_daemon()
        self.assert_use_works()  # the real enclave was never affected

    def test_4_pcr_change_refuses_start_and_keeps_everything(self):
        self.s.stop_daemon()
        self.assertEqual(self.s.enclave.stop(), 0)
        before = dir_snapshot(self.s.enclave_dir)
        self.assertEqual(before["kek.tpm"], self.blob)
        subprocess.run([PCREXTEND, "7:sha256=" + "ab" * 32], check=True, capture_output=True,
                       env=dict(os.environ, TPM2TOOLS_TCTI=self.tcti))
        t0 = time.monotonic()
        p = subprocess.run([ENCLAVE_BIN, "serve", "--data-dir", self.s.enclave_dir, "--listen", "127.0.0.1:0"],
                           env=self.s.enclave_env, capture_output=True, timeout=30)
        self.assertLess(time.monotonic() - t0, 10)
        err = p.stderr.decode()
        self.assertNotEqual(p.returncode, 0, err)
        self.assertNotIn("listening on", err)
        self.assertIn("changed since sealing", err)
        self.assertIn("kek.tpm was kept unchanged for recovery", err)
        self.assertIn("ALN_ERR_KEK_POLICY", err)
        self.assertEqual(dir_snapshot(self.s.enclave_dir), before, "the data dir changed")
        # Every other command refuses the same way: nothing can open the escrow.
        p = subprocess.run([ENCLAVE_BIN, "host", "list", "--data-dir", self.s.enclave_dir],
                           env=self.s.enclave_env, capture_output=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ALN_ERR_KEK_POLICY", p.stderr.decode())
        self.assertEqual(dir_snapshot(self.s.enclave_dir), before)
        # The secret reached no log of ours (nginx, the upstream, legitimately saw it).
        logs = [fn for fn in os.listdir(self.s.dir) if fn.startswith(("enclave", "daemon")) and fn.endswith(".log")]
        self.assertGreaterEqual(len(logs), 4)
        for fn in logs:
            with open(os.path.join(self.s.dir, fn), "rb") as f:
                self.assertNotIn(SECRET, f.read(), fn)


if __name__ == "__main__":
    unittest.main()
