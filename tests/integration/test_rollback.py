"""Rollback protection of the escrow (issue 3), local provider: the enclave keeps the
last epoch it committed in a KEK-authenticated file outside its data dir
(AILERON_EPOCH_FILE) and refuses to start on an escrow database older than that, so
restoring an old copy cannot bring a revoked credential back. Also refused: a
missing epoch file once the escrow has been written, an edited one, one written
under another KEK, and one inside the data dir."""

import os
import re
import shutil
import sqlite3
import struct
import subprocess
import unittest

from harness import ENCLAVE_BIN, Stack, run, wait_for

SECRET = b"sk-rollback-aileron-TEST-4b1e7d2c9a"
ROLLBACK_MSG = re.compile(r"the escrow database is older than the last state this enclave committed "
                          r"\(epoch (\d+) < (\d+)\): an old copy was restored; refusing to start so revoked "
                          r"credentials cannot come back")


class Rollback(unittest.TestCase):
    def setUp(self):
        self.s = Stack()
        self.addCleanup(self.s.close)
        self.token = self.s.session()

    # ---- helpers ------------------------------------------------------------------
    def use(self, name):
        return self.s.http("POST", f"/v1/credentials/{name}/request",
                           {"method": "GET", "url": self.s.upstream("/v1/rb")}, token=self.token)

    def add(self, name):
        self.s.cli("credential", "add", name, "--bearer", "--allow", self.s.upstream("/v1/"), "--ca", self.s.ca_crt,
                   stdin=SECRET)

    def stop(self):
        """Stops daemon and enclave cleanly: the enclave's last close checkpoints the
        WAL into escrow.db."""
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

    def refused(self, *words, env=None):
        """Runs an enclave command that must refuse to start; returns its stderr. A
        serve that wrongly starts never exits and fails the test by the timeout."""
        argv = [ENCLAVE_BIN, *(words or ("serve", "--listen", "127.0.0.1:0")), "--data-dir", self.s.enclave_dir]
        p = subprocess.run(argv, env=env or self.s.enclave_env, capture_output=True, timeout=30)
        err = p.stderr.decode()
        self.assertNotEqual(p.returncode, 0, err)
        self.assertNotIn("listening on", err)
        return err

    def db_files(self):
        return [f"{self.s.enclave_dir}/escrow.db{sfx}" for sfx in ("", "-wal", "-shm")]

    def copy_db(self, dest):
        os.makedirs(dest, exist_ok=True)
        for f in self.db_files():
            if os.path.exists(f):
                shutil.copy2(f, dest)

    def restore_db(self, src):
        for f in self.db_files():
            if os.path.exists(f):
                os.unlink(f)
        for fn in os.listdir(src):
            shutil.copy2(f"{src}/{fn}", self.s.enclave_dir)

    def file_bytes(self):
        with open(self.s.epoch_file, "rb") as f:
            return f.read()

    def file_epoch(self):
        return struct.unpack(">Q", self.file_bytes()[8:16])[0]

    def db_epoch(self, path=None):
        db = sqlite3.connect(f"file:{path or self.s.enclave_dir + '/escrow.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT epoch FROM meta").fetchone()[0]
        finally:
            db.close()

    # ---- tests ----------------------------------------------------------------------
    def test_restored_old_database_is_refused(self):
        self.add("a")
        code, _, raw = self.use("a")
        self.assertEqual(code, 200, raw)
        self.stop()
        self.assertFalse(os.path.exists(self.db_files()[1]), "the WAL was not checkpointed at stop")
        old = f"{self.s.dir}/backup-old"
        self.copy_db(old)
        old_epoch = self.db_epoch(f"{old}/escrow.db")

        self.start()
        self.s.cli("credential", "revoke", "a")
        code, doc, _ = self.use("a")
        self.assertEqual((code, doc["error"]["code"]), (403, "ALN_ERR_REVOKED"))
        self.stop()
        new = f"{self.s.dir}/backup-new"
        self.copy_db(new)
        new_epoch = self.db_epoch()
        self.assertGreater(new_epoch, old_epoch)
        self.assertEqual(self.file_epoch(), new_epoch)
        epoch_file = self.file_bytes()

        # The old copy really holds A live: accepting it would resurrect A.
        db = sqlite3.connect(f"file:{old}/escrow.db?mode=ro", uri=True)
        try:
            self.assertEqual(db.execute("SELECT revoked, live FROM credentials WHERE name = 'a'").fetchall(), [(0, 1)])
        finally:
            db.close()

        self.restore_db(old)
        err = self.refused()
        m = ROLLBACK_MSG.search(err)
        self.assertIsNotNone(m, err)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (old_epoch, new_epoch))
        # Every command that opens the escrow refuses; the evidence is left as it was.
        self.assertRegex(self.refused("host", "list"), ROLLBACK_MSG)
        self.assertEqual(self.file_bytes(), epoch_file)
        self.assertEqual(self.db_epoch(), old_epoch)

        # A is not usable: with no enclave the host cannot reach it, and nothing was sent.
        before = self.s.nginx_log()
        self.s.start_daemon()
        code, _, raw = self.use("a")
        self.assertNotEqual(code, 200, raw)
        self.assertNotIn(SECRET, raw)
        self.assertEqual(self.s.nginx_log(), before)
        self.s.stop_daemon()

        # Control: the newest database starts, with A still revoked.
        self.restore_db(new)
        self.start()
        code, doc, _ = self.use("a")
        self.assertEqual((code, doc["error"]["code"]), (403, "ALN_ERR_REVOKED"))

    def test_missing_epoch_file_is_refused(self):
        self.add("a")
        self.stop()
        os.unlink(self.s.epoch_file)
        err = self.refused()
        self.assertIn("the epoch file is missing", err)
        self.assertIn("restore it", err)
        self.assertFalse(os.path.exists(self.s.epoch_file), "the epoch file was recreated silently")
        self.assertIn("the epoch file is missing", self.refused("host", "list"))
        # The operator's explicit override records the current epoch and starts.
        self.start(env=dict(self.s.enclave_env, AILERON_ACCEPT_ROLLBACK_RISK="1"))
        self.assertIn("AILERON_ACCEPT_ROLLBACK_RISK=1", self.s.enclave.text())
        self.assertEqual(self.file_epoch(), self.db_epoch())
        code, _, raw = self.use("a")
        self.assertEqual(code, 200, raw)

    def test_foreign_or_edited_epoch_file_is_refused(self):
        self.stop()
        good = self.file_bytes()
        # Another enclave (its own KEK) writes a valid file for the same epoch.
        other = f"{self.s.dir}/other"
        os.makedirs(other, mode=0o700)
        run([ENCLAVE_BIN, "host", "enroll", self.s.host_crt, "--data-dir", f"{other}/enclave"],
            env=dict(self.s.enclave_env, AILERON_EPOCH_FILE=f"{other}/epoch"))
        with open(f"{other}/epoch", "rb") as f:
            foreign = f.read()
        self.assertEqual(foreign[:16], good[:16], "the files differ in more than the MAC")
        self.assertNotEqual(foreign, good)

        def install(data):
            with open(self.s.epoch_file, "wb") as f:
                f.write(data)
            os.chmod(self.s.epoch_file, 0o600)

        for what, data in [("another KEK", foreign),
                           ("epoch edited", good[:15] + bytes([good[15] ^ 1]) + good[16:]),
                           ("MAC flipped", good[:-1] + bytes([good[-1] ^ 1])),
                           ("truncated", good[:-1]),
                           ("trailing byte", good + b"\0")]:
            with self.subTest(what):
                install(data)
                self.assertIn("the epoch file failed authentication", self.refused())
                self.assertEqual(self.file_bytes(), data)
        install(good)
        self.start()

    def test_epoch_file_must_be_set_and_outside_the_data_dir(self):
        self.stop()
        env = dict(self.s.enclave_env)
        del env["AILERON_EPOCH_FILE"]
        self.assertIn("set AILERON_EPOCH_FILE", self.refused(env=env))
        env["AILERON_EPOCH_FILE"] = f"{self.s.enclave_dir}/epoch"
        self.assertIn("outside the data dir", self.refused(env=env))
        env["AILERON_EPOCH_FILE"] = f"{self.s.enclave_dir}/sub/../epoch"
        self.assertIn("outside the data dir", self.refused(env=env))
        self.assertFalse(os.path.exists(f"{self.s.enclave_dir}/epoch"))


if __name__ == "__main__":
    unittest.main()
