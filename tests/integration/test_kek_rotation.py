"""KEK rotation (`aileron-enclave kek rotate`, issue 3), with the local provider: every
data key is re-wrapped under a new KEK in one escrow transaction, and whatever state
an interruption leaves, the next start ends with exactly one KEK file that opens every
credential. The interrupted states are made here by hand, deterministically (the
crash loop in test_crash_safety.py kills rotations at random on top of this):

- killed before the escrow committed: kek.next exists, the escrow is still under the
  old KEK -> the start removes kek.next and keeps the old KEK;
- killed after the commit, before the rename: the escrow is under the KEK in
  kek.next, kek still holds the old one and the epoch file is still under the old
  one -> the start renames kek.next over kek and re-keys the epoch file.

Records are shown to open with UseCredential to a destination outside their binding,
which the enclave refuses (ALN_ERR_DEST_NOT_ALLOWED) only after unsealing them."""

import hashlib
import hmac
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import unittest

import pb
from harness import ATTEST, PUT, REVOKE, USE, EnclaveConn, field_bytes, frame, request, run, status_code
from test_crash_safety import ENCLAVE_BIN, Enclave, LocalEnclaveCase, epoch_path

OK = 0
ERR_DEST_NOT_ALLOWED = status_code(0x03, 2)
ERR_REVOKED = status_code(0x03, 5)
PREFIX = "https://127.0.0.1:1/"
OUTSIDE = "https://127.0.0.2/"
NAMES = [f"rot-{i:02d}" for i in range(30)]
REVOKED = NAMES[::7]


def kek_mac_ok(kek, data_dir):
    """The epoch file authenticates under |kek| (checked independently of epoch.c)."""
    with open(epoch_path(data_dir), "rb") as f:
        img = f.read()
    k = hmac.new(kek, b"aileron-epoch-key-v1", hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(k, img[:16], hashlib.sha256).digest(), img[16:48])


class KekRotation(LocalEnclaveCase):
    def setUp(self):
        self.data_dir = f"{tempfile.mkdtemp(dir=self.dir)}/enclave"
        self.run_env = dict(self.env, AILERON_EPOCH_FILE=epoch_path(self.data_dir))
        run([ENCLAVE_BIN, "host", "enroll", self.identity[0], "--data-dir", self.data_dir], env=self.run_env)
        enc = self.start()
        conn = self.connect(enc)
        for i, name in enumerate(NAMES):
            self.call(conn, request(PUT, pb.put_credential(name, f"secret-{i}".encode(),
                                                           pb.binding(pb.BEARER, [PREFIX]))), OK)
        for name in REVOKED:
            self.call(conn, request(REVOKE, field_bytes(1, name.encode())), OK)
        conn.close()
        self.stop(enc)

    # ---- helpers ------------------------------------------------------------------
    def start(self):
        return Enclave(self.data_dir, self.env)

    def stop(self, enc):
        enc.p.send_signal(signal.SIGTERM)
        self.assertEqual(enc.reap(), 0, enc.text())

    def connect(self, enc):
        conn = EnclaveConn(enc.port, *self.identity)
        self.call(conn, request(ATTEST, field_bytes(1, os.urandom(32))), OK)
        return conn

    def call(self, conn, payload, want):
        conn.send(frame(payload))
        status, message, fields = conn.recv_response()
        self.assertEqual(status, want, message)
        return fields

    def kek(self, name="kek"):
        with open(f"{self.data_dir}/{name}", "rb") as f:
            return f.read()

    def rotate(self):
        return subprocess.run([ENCLAVE_BIN, "kek", "rotate", "--data-dir", self.data_dir], env=self.run_env,
                              capture_output=True, timeout=60)

    def assert_all_open(self, enc):
        """Every live credential opens under the KEK in use, every revoked one stays
        revoked, and one KEK file is left."""
        self.assertFalse(os.path.exists(f"{self.data_dir}/kek.next"), "kek.next left behind")
        conn = self.connect(enc)
        for name in NAMES:
            want = ERR_REVOKED if name in REVOKED else ERR_DEST_NOT_ALLOWED
            self.call(conn, request(USE, pb.use_credential(name, "GET", OUTSIDE)), want)
        conn.close()

    def rotation_rows(self):
        db = sqlite3.connect(f"file:{self.data_dir}/escrow.db?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM audit WHERE action = 'kek-rotate' AND actor = 'operator'"
                              " AND result = 0").fetchone()[0]
        finally:
            db.close()

    # ---- tests --------------------------------------------------------------------
    def test_rotation_rewraps_every_data_key_under_a_new_kek(self):
        old = self.kek()
        p = self.rotate()
        self.assertEqual(p.returncode, 0, p.stderr)
        live = len(NAMES) - len(REVOKED)
        self.assertIn(f"{live} data keys re-wrapped".encode(), p.stdout)
        self.assertIn(b"export-recovery", p.stdout)  # old recovery files no longer open it
        new = self.kek()
        self.assertEqual(len(new), 32)
        self.assertNotEqual(new, old)
        self.assertTrue(kek_mac_ok(new, self.data_dir), "the epoch file was not moved to the new KEK")
        self.assertEqual(self.rotation_rows(), 1)
        enc = self.start()
        try:
            self.assert_all_open(enc)
        finally:
            self.stop(enc)
        # The old KEK opens nothing any more: put back alone, the enclave refuses.
        os.rename(f"{self.data_dir}/kek", f"{self.dir}/kek-new")
        with open(f"{self.data_dir}/kek", "xb") as f:
            f.write(old)
        os.chmod(f"{self.data_dir}/kek", 0o600)
        p = subprocess.run([ENCLAVE_BIN, "host", "list", "--data-dir", self.data_dir], env=self.run_env,
                           capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"ALN_ERR_KEK_MISMATCH", p.stderr)

    def test_rotation_is_refused_while_the_enclave_serves(self):
        enc = self.start()
        try:
            old = self.kek()
            p = self.rotate()
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"stop it first", p.stderr)
            self.assertEqual(self.kek(), old)
            self.assertFalse(os.path.exists(f"{self.data_dir}/kek.next"))
            self.assert_all_open(enc)
        finally:
            self.stop(enc)

    def test_killed_before_the_commit_is_undone(self):
        old = self.kek()
        fd = os.open(f"{self.data_dir}/kek.next", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32))  # staged, never used: the escrow did not commit
        os.close(fd)
        enc = self.start()
        try:
            self.assertIn("undid an interrupted KEK rotation", enc.text())
            self.assertEqual(self.kek(), old)
            self.assert_all_open(enc)
        finally:
            self.stop(enc)
        self.assertEqual(self.rotation_rows(), 0)

    def test_killed_after_the_commit_is_finished(self):
        old = self.kek()
        saved_epoch = f"{self.dir}/epoch-before"
        shutil.copy2(epoch_path(self.data_dir), saved_epoch)
        p = self.rotate()
        self.assertEqual(p.returncode, 0, p.stderr)
        new = self.kek()
        # The state of a kill between the commit and the rename: kek.next holds the
        # new KEK, kek the old one, and the epoch file is still under the old one.
        os.rename(f"{self.data_dir}/kek", f"{self.data_dir}/kek.next")
        with open(f"{self.data_dir}/kek", "xb") as f:
            f.write(old)
        os.chmod(f"{self.data_dir}/kek", 0o600)
        shutil.copy2(saved_epoch, epoch_path(self.data_dir))
        self.assertTrue(kek_mac_ok(old, self.data_dir))
        enc = self.start()
        try:
            self.assertIn("finished an interrupted KEK rotation", enc.text())
            self.assertEqual(self.kek(), new)
            self.assertTrue(kek_mac_ok(new, self.data_dir), "the epoch file was not re-keyed")
            self.assert_all_open(enc)
        finally:
            self.stop(enc)
        self.assertEqual(self.rotation_rows(), 1)

    def test_lost_next_kek_is_refused_not_guessed(self):
        """A committed rotation whose new KEK file was lost: the old KEK must not be
        taken for it; the start names the mismatch and changes nothing."""
        old = self.kek()
        p = self.rotate()
        self.assertEqual(p.returncode, 0, p.stderr)
        os.unlink(f"{self.data_dir}/kek")
        with open(f"{self.data_dir}/kek", "xb") as f:
            f.write(old)
        os.chmod(f"{self.data_dir}/kek", 0o600)
        with self.assertRaises(AssertionError) as refused:
            self.start()
        self.assertIn("ALN_ERR_KEK_MISMATCH", str(refused.exception))
        self.assertIn("import-recovery", str(refused.exception))
        self.assertEqual(self.kek(), old)


if __name__ == "__main__":
    unittest.main()
