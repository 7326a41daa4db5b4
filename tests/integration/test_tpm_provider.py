"""The tpm provider against a real software TPM (swtpm, started here): the KEK is
sealed to the TPM under a PCR 7 policy in kek.tpm (0600, no plaintext kek file);
credentials stored through the host open after a restart; the data dir alone, under
the local provider, opens nothing; and once PCR 7 is extended the enclave refuses
to start at once with a clear message, leaving kek.tpm and escrow.db untouched.

TpmCounter, on a TPM of its own: the rollback anchor, a TPM NV counter read here
with tpm2_nvread (an independent reader), moves exactly once per custody write and
never on a credential use; an older copy of the data dir restored together with its
epoch file is refused; a crash between a commit and the increment (the TPM gone at
the commit, and SIGKILLs at random moments of a burst of puts) is accepted and
repaired, every acknowledged write present; and a counter undefined, redefined or
replaced by someone else's index is refused, never silently re-anchored.

The tests of each class run in order (test_1 .. test_4): each builds on the state
the last left."""

import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import stat
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import pb
from harness import ATTEST, ENCLAVE_BIN, PUT, EnclaveConn, Stack, field_bytes, frame, free_port, \
    make_client_identity, parse_response, request, run, wait_for

SECRET = b"sk-tpm-aileron-TEST-3b8e1d7c6a5f4e2d1c0b9a8f"
SWTPM = shutil.which("swtpm")
PCREXTEND = shutil.which("tpm2_pcrextend")
NV_TOOLS = ["tpm2_nvread", "tpm2_nvreadpublic", "tpm2_nvdefine", "tpm2_nvundefine", "tpm2_nvincrement",
            "tpm2_flushcontext"]
NV_INDEX = 0x01A1E000  # the enclave's default AILERON_TPM_NV_INDEX
COUNTER_ATTRS = 0x02040012  # nt=counter | ownerwrite | authread | no_da: not orderly
NV_WRITTEN = 0x20000000
CRASH_CYCLES = int(os.environ.get("ALN_TPM_CRASH_CYCLES", "30"))
CRASH_SEED = int(os.environ.get("ALN_CRASH_SEED", str(random.SystemRandom().randrange(1 << 32))))
ROLLBACK_MSG = re.compile(r"the escrow database is older than the last state this enclave committed \(custody "
                          r"generation (\d+) < (\d+) vouched for by TPM NV counter 0x01a1e000\): an old copy of the "
                          r"database and its epoch file was restored")


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


class SwTpm:
    """A swtpm on two free loopback ports with its state in |tpm_dir|/state; stop()
    and start() again keep that state, as a power cycle of a real TPM would."""

    def __init__(self, tpm_dir):
        self.dir = tpm_dir
        os.makedirs(f"{tpm_dir}/state", exist_ok=True)
        self.port = two_free_ports()
        self.tcti = f"swtpm:host=127.0.0.1,port={self.port}"
        self.p = None
        self.start()

    def start(self):
        self.log = open(f"{self.dir}/swtpm.log", "ab")
        self.p = subprocess.Popen(
            [SWTPM, "socket", "--tpm2", "--tpmstate", f"dir={self.dir}/state",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"], stdout=self.log, stderr=self.log)
        wait_for(lambda: port_open(self.port), timeout=10, what="swtpm")

    def stop(self):
        if self.p is None:
            return
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p = None
        self.log.close()
        wait_for(lambda: not port_open(self.port), timeout=10, what="swtpm to stop")

    def tool(self, *argv, check=True):
        p = subprocess.run(argv, capture_output=True, timeout=30, env=dict(os.environ, TPM2TOOLS_TCTI=self.tcti))
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.decode()}")
        return p


class SwTpmStackCase(unittest.TestCase):
    """A swtpm, and a stack whose enclave uses the tpm provider on it, for one test
    class. prepare_tpm runs on the TPM's directory before swtpm starts (to provision
    it), stack_ready once the stack is up."""

    tpm_prefix = "aileron-swtpm-"

    @classmethod
    def prepare_tpm(cls, tpm_dir):
        pass

    @classmethod
    def stack_ready(cls):
        cls.token = cls.s.session()

    @classmethod
    def setUpClass(cls):
        cls.s = cls.swtpm = None
        cls.tpm_dir = tempfile.mkdtemp(prefix=cls.tpm_prefix)
        try:
            cls.prepare_tpm(cls.tpm_dir)
            cls.swtpm = SwTpm(cls.tpm_dir)
            cls.tcti = cls.swtpm.tcti
            cls.s = Stack(provider="tpm", enclave_env={"AILERON_TPM_TCTI": cls.tcti})
            cls.stack_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.s is not None:
            cls.s.close()
        if cls.swtpm is not None:
            cls.swtpm.stop()
        if os.environ.get("ALN_KEEP_TEST_DIR") != "1":
            shutil.rmtree(cls.tpm_dir, ignore_errors=True)


class TpmProvider(SwTpmStackCase):
    @classmethod
    def setUpClass(cls):
        # Missing tools fail the test rather than skip it: a skipped test proves nothing.
        if not (SWTPM and PCREXTEND):
            raise RuntimeError("swtpm and tpm2_pcrextend are needed: run deploy/local/install-deps")
        super().setUpClass()

    @classmethod
    def stack_ready(cls):
        cls.s.cli("credential", "add", "tpmcred", "--bearer", "--allow", cls.s.upstream("/v1/"), "--ca",
                  cls.s.ca_crt, stdin=SECRET)
        cls.token = cls.s.session()

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
        # escrow names the KEK it was sealed under, so the enclave refuses to start and
        # no request can leave; the key was only in the TPM. (Without a kek file the
        # local provider refuses to start beside an existing escrow.)
        copy = f"{self.s.dir}/enclave-copy"
        shutil.copytree(self.s.enclave_dir, copy)
        os.chmod(copy, 0o700)
        fd = os.open(f"{copy}/kek", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)
        # A copy has no epoch history of its own: give it a fresh epoch file (the
        # real one is authenticated under the TPM's KEK and would rightly refuse).
        local_env = dict(self.s.enclave_env, AILERON_TEE_PROVIDER="local", AILERON_EPOCH_FILE=f"{self.s.dir}/epoch-copy",
                         AILERON_ACCEPT_ROLLBACK_RISK="1")
        del local_env["AILERON_TPM_TCTI"]
        before = self.s.nginx_log()
        p = subprocess.run([ENCLAVE_BIN, "serve", "--data-dir", copy, "--listen", "127.0.0.1:0"], env=local_env,
                           capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"ALN_ERR_KEK_MISMATCH", p.stderr)
        self.assertNotIn(SECRET, p.stderr)
        self.assertEqual(self.s.nginx_log(), before, "a request left without the real KEK")
        self.assert_use_works()  # the real enclave was never affected

    def test_3b_kek_rotation_reseals_a_new_kek_to_the_tpm(self):
        """`kek rotate` with the tpm provider: the new KEK is sealed to the TPM (never
        in a plain file), kek.tpm is replaced whole, the credential still works, and
        the rotation moves the NV counter (a custody write) once."""
        d = self.s.enclave_dir
        self.s.stop_daemon()
        self.assertEqual(self.s.enclave.stop(), 0)
        with open(f"{d}/kek.tpm", "rb") as f:
            before = f.read()
        nv = struct.unpack(">Q", self.swtpm.tool("tpm2_nvread", hex(NV_INDEX), "-s", "8").stdout)[0]
        env = dict(self.s.enclave_env)
        p = subprocess.run([ENCLAVE_BIN, "kek", "rotate", "--data-dir", d], env=env, capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(struct.unpack(">Q", self.swtpm.tool("tpm2_nvread", hex(NV_INDEX), "-s", "8").stdout)[0],
                         nv + 1, "the rotation did not move the NV counter exactly once")
        self.assertIn(b"1 data keys re-wrapped", p.stdout)
        with open(f"{d}/kek.tpm", "rb") as f:
            after = f.read()
        self.assertEqual(after[:8], b"ALNTPMK1")
        self.assertNotEqual(after, before)
        self.assertFalse(os.path.exists(f"{d}/kek.tpm.next"))
        self.assertFalse(os.path.exists(f"{d}/kek"), "a plaintext KEK file was written")
        for name, data in self.s.enclave_files():
            self.assertNotIn(SECRET, data, name)
        self.s.enclave = self.start_enclave(d, self.s.enclave_env, self.s.enclave_port,
                                            f"enclave-{len(self.s.procs)}.log")
        self.s.start_daemon()
        self.assert_use_works()
        type(self).blob = after

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


class TpmCounter(SwTpmStackCase):
    tpm_prefix = "aileron-swtpm-ctr-"

    @classmethod
    def setUpClass(cls):
        missing = [t for t in ["swtpm", *NV_TOOLS] if not shutil.which(t)]
        if missing:  # fail, not skip: a skipped test proves nothing
            raise RuntimeError(f"{', '.join(missing)} needed: run deploy/local/install-deps")
        super().setUpClass()

    # ---- independent readers ------------------------------------------------------
    def nv_value(self):
        """The counter as tpm2_nvread reads it (8 bytes, big endian)."""
        out = self.swtpm.tool("tpm2_nvread", hex(NV_INDEX), "-s", "8").stdout
        self.assertEqual(len(out), 8, out)
        return struct.unpack(">Q", out)[0]

    def nv_public(self):
        """(attributes, size) of the index as tpm2_nvreadpublic shows them, or None
        if it is not defined."""
        p = self.swtpm.tool("tpm2_nvreadpublic", hex(NV_INDEX), check=False)
        if p.returncode != 0:
            return None
        text = p.stdout.decode()
        attrs = int(re.search(r"attributes:.*?value: (0x[0-9a-fA-F]+)", text, re.S).group(1), 16)
        return attrs, int(re.search(r"size: (\d+)", text).group(1))

    def epoch_record(self, path=None):
        """(epoch, generation, nv_index, base) of the ALNEPOC2 file; its MAC is keyed
        by the KEK, which only the TPM holds, so only its layout is checked here."""
        with open(path or self.s.epoch_file, "rb") as f:
            img = f.read()
        self.assertEqual((len(img), img[:8]), (68, b"ALNEPOC2"), img.hex())
        return struct.unpack(">QQIQ", img[8:36])

    def db_counts(self, data_dir=None):
        # Read-write (for reading only): a read-only connection would leave -wal and
        # -shm files behind in a stopped enclave's data dir, which the snapshots see.
        db = sqlite3.connect(f"file:{data_dir or self.s.enclave_dir}/escrow.db?mode=rw", uri=True)
        try:
            return db.execute("SELECT epoch, generation FROM meta WHERE id = 1").fetchone()
        finally:
            db.close()

    def assert_level(self):
        """Counter = base + database generation, and the file records both counts.
        Returns (counter, epoch, generation)."""
        epoch, gen = self.db_counts()
        f_epoch, f_gen, idx, base = self.epoch_record()
        c = self.nv_value()
        self.assertEqual((f_epoch, f_gen, idx), (epoch, gen, NV_INDEX))
        self.assertEqual((c - base) % (1 << 64), gen, f"counter {c}, base {base}, generation {gen}")
        return c, epoch, gen

    # ---- processes ----------------------------------------------------------------
    def use(self, name):
        return self.s.http("POST", f"/v1/credentials/{name}/request",
                           {"method": "GET", "url": self.s.upstream("/v1/ctr")}, token=self.token)

    def add(self, name, *extra):
        self.s.cli("credential", "add", name, "--bearer", "--allow", self.s.upstream("/v1/"), "--ca", self.s.ca_crt,
                   *extra, stdin=SECRET)

    def stop(self):
        self.s.stop_daemon()
        self.assertEqual(self.s.enclave.stop(), 0, self.s.enclave.text())

    def start(self, env=None):
        p = self.s._start([ENCLAVE_BIN, "serve", "--data-dir", self.s.enclave_dir, "--listen",
                           f"127.0.0.1:{self.s.enclave_port}"], f"enclave-{len(self.s.procs)}.log",
                          env=env or self.s.enclave_env)
        wait_for(lambda: "listening on" in p.text() or p.p.poll() is not None, what="enclave")
        self.assertIsNone(p.p.poll(), p.text())
        self.s.enclave = p
        self.s.start_daemon()
        return p

    def refused(self, *words, env=None):
        """Runs an enclave command that must refuse to start; returns its stderr."""
        argv = [ENCLAVE_BIN, *(words or ("serve", "--listen", "127.0.0.1:0")), "--data-dir", self.s.enclave_dir]
        p = subprocess.run(argv, env=env or self.s.enclave_env, capture_output=True, timeout=30)
        err = p.stderr.decode()
        self.assertNotEqual(p.returncode, 0, err)
        self.assertNotIn("listening on", err)
        return err

    def state_copy(self, dest):
        """A copy of the data dir and the epoch file, as a backup would take them."""
        shutil.copytree(self.s.enclave_dir, f"{dest}/enclave")
        shutil.copy2(self.s.epoch_file, f"{dest}/epoch")

    def state_restore(self, src):
        shutil.rmtree(self.s.enclave_dir)
        shutil.copytree(f"{src}/enclave", self.s.enclave_dir)
        os.chmod(self.s.enclave_dir, 0o700)
        shutil.copy2(f"{src}/epoch", self.s.epoch_file)

    def state_snapshot(self):
        with open(self.s.epoch_file, "rb") as f:
            return dir_snapshot(self.s.enclave_dir), f.read()

    # ---- tests, in order ------------------------------------------------------------
    def test_1_custody_writes_move_the_counter_uses_do_not(self):
        attrs, size = self.nv_public()
        self.assertEqual((attrs, size), (COUNTER_ATTRS | NV_WRITTEN, 8), hex(attrs))
        c0, e0, g0 = self.assert_level()
        self.assertEqual(g0, 1)  # the stack's host enroll

        steps = [("add a", lambda: self.add("a"), 1),
                 ("use a", lambda: self.assertEqual(self.use("a")[0], 200), 0),
                 ("use a", lambda: self.assertEqual(self.use("a")[0], 200), 0),
                 ("use a", lambda: self.assertEqual(self.use("a")[0], 200), 0),
                 ("use of a missing credential", lambda: self.assertEqual(self.use("nope")[0], 404), 0),
                 ("replace a", lambda: self.add("a", "--replace"), 1),
                 ("add b", lambda: self.add("b"), 1),
                 ("refused add b", lambda: self.assertNotEqual(
                     self.s.cli("credential", "add", "b", "--bearer", "--allow", self.s.upstream("/v1/"),
                                stdin=SECRET, check=False).returncode, 0), 0),
                 ("revoke a", lambda: self.s.cli("credential", "revoke", "a"), 1),
                 ("use of revoked a", lambda: self.assertEqual(self.use("a")[0], 403), 0)]
        c, epoch, gen = c0, e0, g0
        for what, act, moves in steps:
            act()
            c2, epoch2, gen2 = self.assert_level()
            self.assertEqual(c2 - c, moves, f"{what}: the counter moved {c2 - c} times")
            self.assertEqual(gen2 - gen, moves, what)
            if what.startswith("use") or what.startswith("replace") or what.startswith("add") or \
                    what.startswith("revoke"):
                self.assertGreater(epoch2, epoch, f"{what}: no write?")  # every one of these wrote (audit rows)
            c, epoch, gen = c2, epoch2, gen2
        self.assertEqual(c - c0, 4)
        # The same after a restart: nothing moves, the counter is read, not bumped.
        self.stop()
        self.start()
        self.assertEqual(self.assert_level()[0], c)
        self.assertEqual(self.use("b")[0], 200)
        self.assertEqual(self.assert_level()[0], c)

    def test_2_old_data_dir_and_epoch_file_restored_together_is_refused(self):
        self.stop()
        old = f"{self.s.dir}/backup-old"
        self.state_copy(old)
        old_epoch, old_gen = self.db_counts()
        # The old copy is consistent in itself: its file alone would vouch for it.
        self.assertEqual(self.epoch_record(f"{old}/epoch")[:2], (old_epoch, old_gen))

        self.start()
        self.s.cli("credential", "revoke", "b")
        self.assertEqual(self.use("b")[0], 403)
        self.stop()
        new = f"{self.s.dir}/backup-new"
        self.state_copy(new)
        _, new_gen = self.db_counts()
        self.assertEqual(new_gen, old_gen + 1)

        self.state_restore(old)
        before = self.state_snapshot()
        c = self.nv_value()
        err = self.refused()
        m = ROLLBACK_MSG.search(err)
        self.assertIsNotNone(m, err)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (old_gen, new_gen))
        self.assertIn("ALN_ERR_ROLLBACK", err)
        self.assertRegex(self.refused("host", "list"), ROLLBACK_MSG)
        # Refusing changed nothing: not the files, not the counter.
        self.assertEqual(self.state_snapshot(), before)
        self.assertEqual(self.nv_value(), c)

        # Control: the newest state starts, b still revoked.
        self.state_restore(new)
        self.start()
        self.assertEqual(self.use("b")[0], 403)
        self.assert_level()

    def test_3_crash_between_commit_and_increment_is_repaired(self):
        # Deterministic: the TPM is gone when a custody write commits, and the
        # enclave is killed before any later write could bring the counter level.
        c, _, gen = self.assert_level()
        self.swtpm.stop()
        self.add("c")  # acknowledged: durable in the database
        wait_for(lambda: "recording it outside the data dir failed" in self.s.enclave.text(), what="hook failure")
        self.s.stop_daemon()
        self.s.enclave.p.send_signal(signal.SIGKILL)
        self.s.enclave.stop()
        self.swtpm.start()
        self.assertEqual(self.db_counts()[1], gen + 1)
        self.assertEqual(self.nv_value(), c, "the counter moved without the TPM")
        self.assertEqual(self.epoch_record()[1], gen)  # the file records only what the counter reached
        self.start()
        self.assertEqual(self.assert_level()[0], c + 1)  # repaired at start
        self.assertEqual(self.use("c")[0], 200)

        # SIGKILLs at random moments of a burst of puts, straight to the enclave.
        self.stop()
        crt, key = make_client_identity(self.s.dir, "ctr-client")
        run([ENCLAVE_BIN, "host", "enroll", crt, "--label", "ctr-client", "--data-dir", self.s.enclave_dir],
            env=self.s.enclave_env)
        rng = random.Random(CRASH_SEED)
        binding = pb.binding(pb.BEARER, ["https://127.0.0.1:1/"])
        acked, behind, n = [], 0, 0
        for cycle in range(CRASH_CYCLES):
            where = f"cycle {cycle}, seed {CRASH_SEED}"
            enc = self.s._start([ENCLAVE_BIN, "serve", "--data-dir", self.s.enclave_dir, "--listen", "127.0.0.1:0"],
                                f"enclave-crash-{cycle}.log", env=self.s.enclave_env)
            wait_for(lambda: "listening on" in enc.text() or enc.p.poll() is not None, what="enclave")
            self.assertIsNone(enc.p.poll(), f"{where}: restart refused:\n{enc.text()}")
            # The restart brought the counter level with every acknowledged write.
            self.assert_level()
            names = self.credential_names()
            self.assertFalse(set(acked) - names, f"{where}: acknowledged puts lost")
            port = int(re.search(r"port (\d+)", enc.text()).group(1))
            conn = EnclaveConn(port, crt, key)
            conn.send(frame(request(ATTEST, field_bytes(1, os.urandom(32)))))
            self.assertEqual(conn.recv_response()[0], 0, where)
            timer = threading.Timer(rng.uniform(0, 0.150), enc.p.send_signal, [signal.SIGKILL])
            timer.start()
            try:
                while True:
                    name = f"k{n:04d}"
                    n += 1
                    try:
                        conn.send(frame(request(PUT, pb.put_credential(name, b"s3cret", binding))))
                        resp = conn.recv_response()
                    except (OSError, ssl.SSLError):
                        resp = None
                    if resp is None:
                        break
                    self.assertEqual(resp[0], 0, f"{where}: {resp[1]}")
                    acked.append(name)
            finally:
                timer.join()
                conn.close()
            enc.stop()
            # swtpm has no resource manager: free what the killed process left loaded,
            # as the kernel's /dev/tpmrm0 does when a process dies.
            self.swtpm.tool("tpm2_flushcontext", "-t")
            self.swtpm.tool("tpm2_flushcontext", "-l")
            # Was it killed between a commit and its increment? Then the counter is
            # one behind the database, which the next start must accept.
            _, gen = self.db_counts()
            _, _, _, base = self.epoch_record()
            lag = gen - (self.nv_value() - base) % (1 << 64)
            self.assertIn(lag, (0, 1), where)
            behind += lag
        self.start()
        self.assert_level()
        self.assertFalse(set(acked) - self.credential_names(), "acknowledged puts lost")
        self.assertGreater(len(acked), CRASH_CYCLES)
        print(f"\n{CRASH_CYCLES} kills (seed {CRASH_SEED}), {len(acked)} puts acknowledged, "
              f"{behind} kills between a commit and its increment", flush=True)
        self.assertGreater(behind, 0, "no kill landed between a commit and its increment: the repair went untested")

    def credential_names(self):
        db = sqlite3.connect(f"file:{self.s.enclave_dir}/escrow.db?mode=rw", uri=True)
        try:
            return {r[0] for r in db.execute("SELECT DISTINCT name FROM credentials")}
        finally:
            db.close()

    def test_4_redefined_or_foreign_index_is_refused(self):
        self.stop()
        epoch, gen = self.db_counts()
        before = self.state_snapshot()
        idx = hex(NV_INDEX)
        c = self.nv_value()

        # Undefined (TPM cleared, or the owner removed it): gone, never re-created.
        self.swtpm.tool("tpm2_nvundefine", idx, "-C", "o")
        err = self.refused()
        self.assertIn("TPM NV counter 0x01a1e000 recorded in the epoch file no longer exists", err)
        self.assertIn("ALN_ERR_NOT_FOUND", err)
        self.assertIsNone(self.nv_public(), "the enclave defined the index again")
        # Redefined with the same attributes, so the same name: never incremented.
        self.swtpm.tool("tpm2_nvdefine", idx, "-C", "o", "-s", "8", "-a", "nt=counter|ownerwrite|authread|no_da")
        err = self.refused()
        self.assertIn("is not the counter this enclave recorded", err)
        self.assertIn("ALN_ERR_TAMPERED", err)
        self.assertEqual(self.nv_public(), (COUNTER_ATTRS, 8), "the enclave wrote the redefined index")
        # ... and incremented by its new owner: it restarts above the old value (a TPM
        # counter never goes back), so the database looks older than the counter.
        self.swtpm.tool("tpm2_nvincrement", idx, "-C", "o")
        self.assertGreater(self.nv_value(), c)
        self.assertRegex(self.refused(), ROLLBACK_MSG)
        # Someone else's index: a counter anyone with its (empty) auth may increment.
        self.swtpm.tool("tpm2_nvundefine", idx, "-C", "o")
        self.swtpm.tool("tpm2_nvdefine", idx, "-C", "o", "-s", "8", "-a", "nt=counter|authwrite|authread|no_da")
        self.swtpm.tool("tpm2_nvincrement", idx)
        self.assertIn("is not the counter this enclave recorded", self.refused())
        self.assertIn("is not the counter this enclave recorded", self.refused("host", "list"))
        self.assertEqual(self.state_snapshot(), before, "a refused start changed the data dir or the epoch file")

        # The operator's way out (as after a KEK recovery onto another TPM): vouch for
        # the database once. Someone else's index is still not taken over ...
        accept = dict(self.s.enclave_env, AILERON_ACCEPT_ROLLBACK_RISK="1")
        err = self.refused(env=accept)
        self.assertIn("exists but is not a counter this enclave defines", err)
        self.assertEqual(self.state_snapshot(), before)
        # ... nor does the override accept a database older than the file: the old
        # copy of test 2 restored alone.
        self.swtpm.tool("tpm2_nvundefine", idx, "-C", "o")
        current = f"{self.s.dir}/backup-current"
        self.state_copy(current)
        shutil.rmtree(self.s.enclave_dir)
        shutil.copytree(f"{self.s.dir}/backup-old/enclave", self.s.enclave_dir)
        old_epoch = self.db_counts()[0]
        err = self.refused(env=accept)
        self.assertIn(f"older than the last state this enclave committed (epoch {old_epoch} < {epoch})", err)
        self.assertIsNone(self.nv_public(), "a refused start defined a counter")
        self.state_restore(current)
        self.assertEqual(self.state_snapshot(), before)
        # ... but once that index is gone, a new counter anchors the database as it is.
        p = self.start(env=accept)
        self.assertIn("WARNING: AILERON_ACCEPT_ROLLBACK_RISK=1", p.text())
        self.assertEqual(self.assert_level()[1:], (epoch, gen))
        self.assertNotEqual(self.epoch_record()[3], struct.unpack(">Q", before[1][28:36])[0], "the base was not renewed")
        self.assertEqual(self.nv_public(), (COUNTER_ATTRS | NV_WRITTEN, 8))
        self.assertEqual(self.use("c")[0], 200)
        c, _, gen = self.assert_level()
        self.s.cli("credential", "revoke", "c")
        self.assertEqual(self.assert_level()[0], c + 1)


if __name__ == "__main__":
    unittest.main()
