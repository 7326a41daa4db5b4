"""Disk full: the enclave's data dir sits on a small tmpfs that the test fills to the
last block. Writes must fail with ALN_ERR_DISK_FULL ("storage full; nothing was
written") and change nothing; what was stored before must survive intact (every
credential opens with its own secret, the audit chain verifies, the rollback epoch
check passes); once space is freed, writes work again.

The exactly-full tests restart (or stop) the enclave before they fill the disk, so
the WAL starts empty and every write must grow it: then no write can commit. The
burst test instead leaves some room and writes until it runs out; there, and in the
epoch test, a failed write leaves allocated WAL pages behind in which a smaller
commit (the refusal's own audit row) can still fit.

Where the epoch file (AILERON_EPOCH_FILE) lives matters only when a commit can
succeed on a full disk: the epoch file is replaced after each commit, through a
new temp file that needs a block of its own. So the exactly-full write and use tests
keep it on the normal filesystem (a data volume that fills alone: the file must stay
byte for byte what it was), and the burst, epoch and start tests keep it on the full
tmpfs beside the data dir, as deploy/local does, where a commit can stand while its
epoch record fails and the next start must repair it.

Needs root (mount). It is never skipped: without a full disk it proves nothing.
ALN_DISKFULL_SEED replays the burst; ALN_KEEP_TEST_DIR=1 keeps the stack's dir."""

import base64
import errno
import hashlib
import hmac
import os
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import unittest

import pb
from harness import (ATTEST, ENCLAVE_BIN, LIST, PUT, REVOKE, USE, EnclaveConn, Stack, field_bytes, frame, request,
                     secret_forms, status_code, wait_for)
from test_crash_safety import audit_hash

OK = 0
ERR_REVOKED = status_code(0x03, 5)
ERR_DISK_FULL = status_code(0x08, 11)
DISK_FULL_MSG = "storage full; nothing was written"
SEED = int(os.environ.get("ALN_DISKFULL_SEED", str(random.SystemRandom().randrange(1 << 32))))
BURST_HEADROOM_PAGES = 48  # room for some puts of the burst, not for all of them
BURST_MAX = 200
FAILURES_AFTER_FIRST = 8  # the burst goes on after the disk filled: some may still fit


class SmallDisk:
    """A 4 MiB tmpfs mounted for one test and unmounted by its cleanup."""

    def __init__(self, test, size="4m"):
        self.root = tempfile.mkdtemp(prefix="aileron-diskfull-")
        self.mnt = f"{self.root}/mnt"
        os.mkdir(self.mnt, 0o700)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", self.mnt],
                           capture_output=True)
        if p.returncode != 0:
            shutil.rmtree(self.root, ignore_errors=True)
            # Not a skip: a disk-full test that did not fill a disk proves nothing.
            raise AssertionError(f"cannot mount a {size} tmpfs ({p.stderr.decode().strip()}): this test needs root "
                                 "(CAP_SYS_ADMIN) to make a disk it can fill; run it as root, as CI does")
        self.filler = f"{self.mnt}/filler"
        test.addCleanup(self.unmount)

    def unmount(self):
        p = subprocess.run(["umount", self.mnt], capture_output=True)
        if p.returncode != 0:
            # Still busy (a process left behind by a failed start): detach it so no
            # mount outlives the test, and say so.
            subprocess.run(["umount", "--lazy", self.mnt], capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)
            raise AssertionError(f"tmpfs {self.mnt} was busy at cleanup: {p.stderr.decode().strip()}")
        shutil.rmtree(self.root, ignore_errors=True)

    def free_blocks(self):
        st = os.statvfs(self.mnt)
        return st.f_bfree, st.f_bavail

    def fill(self):
        """Appends to the filler until ENOSPC, down to single bytes: afterwards not one
        block is free, so any write that needs a new block fails."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 20, 4096, 1):
                data = bytes(chunk)
                while True:
                    try:
                        os.write(fd, data)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        assert self.free_blocks() == (0, 0), f"tmpfs not full after the filler: {self.free_blocks()}"

    def release(self, pages):
        """Shrinks the filler until |pages| more blocks are free than now."""
        bsize = os.statvfs(self.mnt).f_frsize
        want = self.free_blocks()[0] + pages
        size = os.path.getsize(self.filler)
        while self.free_blocks()[0] < want:
            size = (size - 1) // bsize * bsize  # one block boundary down
            os.truncate(self.filler, size)
        assert self.free_blocks()[0] == want, (self.free_blocks(), want)

    def leave_free(self, pages):
        """Fills the disk, then shrinks the filler until exactly |pages| blocks are free."""
        self.fill()
        self.release(pages)

    def empty(self):
        os.unlink(self.filler)


class DiskFull(unittest.TestCase):
    # ---- stack ------------------------------------------------------------------
    def make_stack(self, epoch_on_full_disk):
        self.disk = SmallDisk(self)
        epoch = f"{self.disk.mnt}/epoch" if epoch_on_full_disk else None
        self.s = Stack(enclave_dir=f"{self.disk.mnt}/enclave", epoch_file=epoch)
        self.addCleanup(self.s.close)  # runs before the unmount: nothing keeps the tmpfs busy
        with open(self.s.ca_crt, "rb") as f:
            self.ca_pem = f.read()
        self.messages = []  # every RPC status message the tests saw
        self.token = self.s.session()
        return self.s

    def start_enclave(self):
        """Starts aileron-enclave on the stack's data dir and port; returns its Proc,
        which may have exited (a refused start)."""
        s = self.s
        p = s._start([ENCLAVE_BIN, "serve", "--data-dir", s.enclave_dir, "--listen", f"127.0.0.1:{s.enclave_port}"],
                     f"enclave-{len(s.procs)}.log", env=s.enclave_env)
        wait_for(lambda: "listening on" in p.text() or p.p.poll() is not None, what="enclave start or exit")
        return p

    def stop_enclave(self):
        self.s.stop_daemon()
        rc = self.s.enclave.stop()
        self.assertEqual(rc, 0, f"enclave did not stop cleanly:\n{self.s.enclave.text()}")

    def restart(self):
        """Clean stop and start of enclave and daemon. The stop checkpoints the WAL and
        deletes it, so the next write has to grow a new one."""
        self.stop_enclave()
        p = self.start_enclave()
        self.assertIsNone(p.p.poll(), f"enclave refused to start:\n{p.text()}")
        self.s.enclave = p
        self.s.start_daemon()

    # ---- RPC, straight to the enclave with the host's own enrolled identity ------
    def connect(self):
        s = self.s
        conn = EnclaveConn(s.enclave_port, s.host_crt, f"{s.host_dir}/host.key")
        self.addCleanup(conn.close)
        status, message, _ = self.rpc(conn, request(ATTEST, field_bytes(1, os.urandom(32))))
        self.assertEqual(status, OK, message)
        return conn

    def rpc(self, conn, payload):
        conn.send(frame(payload))
        resp = conn.recv_response()
        self.assertIsNotNone(resp, "the enclave closed the connection instead of answering")
        self.assertIsNone(self.s.enclave.p.poll(), f"the enclave died:\n{self.s.enclave.text()}")
        self.messages.append(resp[1])
        return resp

    def binding(self, prefix):
        return pb.binding(pb.BEARER, [prefix]) + field_bytes(4, self.ca_pem)  # ca_pem = 4

    def rpc_list(self, conn):
        status, message, fields = self.rpc(conn, request(LIST))
        self.assertEqual(status, OK, message)
        return {i["name"]: (i["version"], i["revoked"]) for i in pb.parse_list(fields.get(LIST, b""))}

    def assert_disk_full(self, resp, what):
        status, message, fields = resp
        self.assertEqual((status, message), (ERR_DISK_FULL, DISK_FULL_MSG), what)
        self.assertFalse(fields, f"{what}: a refused write answered with a body")

    # ---- host HTTP API ------------------------------------------------------------
    def http_put(self, name, secret, replace=False):
        body = {"name": name, "secret_b64": base64.b64encode(secret).decode(), "injection": {"kind": "bearer"},
                "allow": [self.s.upstream("/v1/")], "ca_pem": self.ca_pem.decode(), "replace": replace}
        return self.s.http("POST", "/v1/credentials", body, token=self.s.operator_token)

    def use(self, name, tag):
        return self.s.http("POST", f"/v1/credentials/{name}/request",
                           {"method": "GET", "url": self.s.upstream(f"/v1/{name}/{tag}")}, token=self.token)

    def assert_http_disk_full(self, answer, what):
        code, doc, raw = answer
        # A server-side condition, not the caller's fault; the code says which.
        self.assertTrue(500 <= code < 600, f"{what}: HTTP {code}: {raw}")
        self.assertEqual((doc["error"]["code"], doc["error"]["message"]), ("ALN_ERR_DISK_FULL", DISK_FULL_MSG), what)

    def assert_opens_with(self, name, secret, tag, header=False):
        """A use of |name| reaches nginx carrying exactly |secret| (as a bearer token,
        or with |header| as X-Api-Key): the record opened."""
        before = len(self.s.nginx_log())
        code, _, raw = self.use(name, tag)
        self.assertEqual(code, 200, f"{name}: {raw}")
        sent = f"auth=[-] key=[{secret.decode()}]" if header else f"auth=[Bearer {secret.decode()}] key=[-]"
        line = f"GET /v1/{name}/{tag} {sent}\n"
        # nginx logs after it answered, so the line may still be on its way; the
        # message leaves the secret out.
        try:
            wait_for(lambda: line in self.s.nginx_log()[before:], timeout=5, what="nginx log line")
        except TimeoutError:
            self.fail(f"{name}: the use did not reach nginx with its own secret")

    # ---- state, read independently --------------------------------------------------
    def epochs(self):
        """(epoch in the file, epoch in the database), the file's MAC checked as
        SECURITY.md specifies it, independently of enclave/epoch.c."""
        with open(self.s.epoch_file, "rb") as f:
            img = f.read()
        with open(f"{self.s.enclave_dir}/kek", "rb") as f:
            kek = f.read()
        self.assertEqual((len(img), img[:8]), (48, b"ALNEPOC1"))
        k = hmac.new(kek, b"aileron-epoch-key-v1", hashlib.sha256).digest()
        self.assertTrue(hmac.compare_digest(hmac.new(k, img[:16], hashlib.sha256).digest(), img[16:]), "epoch MAC")
        db = sqlite3.connect(f"file:{self.s.enclave_dir}/escrow.db?mode=ro", uri=True)
        try:
            (db_epoch,) = db.execute("SELECT epoch FROM meta WHERE id = 1").fetchone()
        finally:
            db.close()
        return struct.unpack(">Q", img[8:16])[0], db_epoch

    def audit_rows(self):
        """Recomputes the audit hash chain row by row (as test_crash_safety does) and
        returns [(action, credential, result)]."""
        db = sqlite3.connect(f"file:{self.s.enclave_dir}/escrow.db?mode=ro", uri=True)
        db.text_factory = bytes
        try:
            rows = db.execute("SELECT seq, time, actor, host_key, action, credential, method, destination, decision,"
                              " result, http_status, prev_hash, hash FROM audit ORDER BY seq").fetchall()
        finally:
            db.close()
        prev, out = bytes(32), []
        for n, r in enumerate(rows, 1):
            self.assertEqual(r[0], n, "audit sequence broken")
            self.assertEqual(r[11], prev, f"audit row {n}: prev_hash breaks the chain")
            prev = audit_hash(prev, (r[0], r[1], r[2:9], r[9], r[10]))
            self.assertEqual(r[12], prev, f"audit row {n}: hash does not recompute")
            out.append(((r[4] or b"").decode(), (r[5] or b"").decode(), r[9]))
        return out

    def check_rows(self):
        """One live row per live name; a row that is not live keeps no sealed material."""
        db = sqlite3.connect(f"file:{self.s.enclave_dir}/escrow.db?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT name, version, live, wrapped_key IS NULL, ciphertext IS NULL FROM credentials"
                              " ORDER BY name, version").fetchall()
        finally:
            db.close()
        live = {}
        for name, version, is_live, no_key, no_ct in rows:
            if is_live:
                self.assertNotIn(name, live, f"two live rows for {name}")
                self.assertFalse(no_key or no_ct, f"live row {name} v{version} incomplete")
                live[name] = version
            else:
                self.assertTrue(no_key and no_ct, f"{name} v{version} not live but still sealed")
        return live

    def assert_no_secret_leaked(self, secrets):
        """No form of any secret in the enclave's or daemon's logs, any HTTP answer or
        CLI output, or any RPC status message (nginx's own log holds them by design)."""
        hay = [(f"response {i}", r) for i, r in enumerate(self.s.responses)]
        hay.append(("RPC messages", "\n".join(self.messages).encode()))
        for p in self.s.procs:
            if p is not self.s.nginx:
                with open(p.log_path, "rb") as f:
                    hay.append((os.path.basename(p.log_path), f.read()))
        for secret in secrets:
            for form in secret_forms(secret):
                for where, data in hay:
                    self.assertNotIn(form, data, f"secret material in {where}")

    # ---- tests ----------------------------------------------------------------------
    def test_full_disk_refuses_every_write_and_damages_nothing(self):
        s = self.make_stack(epoch_on_full_disk=False)
        secrets = {n: f"sk-diskfull-{n}-{os.urandom(8).hex()}".encode() for n in ("gh", "keyed", "rot", "gone")}
        rot_v2 = b"sk-diskfull-rot-v2-" + os.urandom(8).hex().encode()
        new_secret = b"sk-diskfull-new-" + os.urandom(8).hex().encode()
        repl_secret = b"sk-diskfull-repl-" + os.urandom(8).hex().encode()
        for name, secret in secrets.items():
            inject = ["--header", "X-Api-Key"] if name == "keyed" else ["--bearer"]
            s.cli("credential", "add", name, *inject, "--allow", s.upstream("/v1/"), "--ca", s.ca_crt, stdin=secret)
        code, _, raw = self.http_put("rot", rot_v2, replace=True)
        self.assertEqual(code, 201, raw)
        s.cli("credential", "revoke", "gone")
        live = {"gh": secrets["gh"], "keyed": secrets["keyed"], "rot": rot_v2}
        for name, secret in live.items():
            self.assert_opens_with(name, secret, "before", header=name == "keyed")
        self.restart()

        conn = self.connect()
        listed = self.rpc_list(conn)
        self.assertEqual(listed, {"gh": (1, False), "keyed": (1, False), "rot": (2, False), "gone": (1, True)})
        before = s.db_snapshot()
        with open(s.epoch_file, "rb") as f:
            epoch_before = f.read()
        self.assertEqual(*self.epochs())

        self.disk.fill()
        # Straight to the enclave: status code and message of every kind of write.
        writes = {
            "put": request(PUT, pb.put_credential("fresh", new_secret, self.binding(s.upstream("/v1/")))),
            "replace": request(PUT, pb.put_credential("gh", repl_secret, self.binding(s.upstream("/v1/")),
                                                      replace=True)),
            "put over a revoked name": request(PUT, pb.put_credential("gone", new_secret,
                                                                      self.binding(s.upstream("/v1/")))),
            "revoke": request(REVOKE, pb.revoke_credential("keyed")),
        }
        for what, payload in writes.items():
            with self.subTest(f"RPC {what}"):
                self.assert_disk_full(self.rpc(conn, payload), what)
                self.assertEqual(s.db_snapshot(), before, f"{what} on a full disk changed the escrow")
        # Through the host: a clear HTTP error, and the same from the CLI.
        for what, answer in [("put", lambda: self.http_put("fresh", new_secret)),
                             ("replace", lambda: self.http_put("gh", repl_secret, replace=True)),
                             ("revoke", lambda: s.http("DELETE", "/v1/credentials/keyed", token=s.operator_token))]:
            with self.subTest(f"HTTP {what}"):
                self.assert_http_disk_full(answer(), what)
                self.assertEqual(s.db_snapshot(), before, f"{what} on a full disk changed the escrow")
        p = s.cli("credential", "add", "fresh", "--bearer", "--allow", s.upstream("/v1/"), stdin=new_secret,
                  check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(DISK_FULL_MSG, p.stderr.decode())

        # Reads still work and show the store as it was; nothing moved the epoch.
        self.assertEqual(self.rpc_list(conn), listed)
        code, doc, raw = s.http("GET", "/v1/credentials", token=s.operator_token)
        self.assertEqual(code, 200, raw)
        self.assertEqual({c["name"]: (c["version"], c["revoked"]) for c in doc["credentials"]}, listed)
        self.assertEqual(s.db_snapshot(), before)
        with open(s.epoch_file, "rb") as f:
            self.assertEqual(f.read(), epoch_before, "the epoch file changed while nothing was written")
        self.assertEqual(self.disk.free_blocks(), (0, 0), "a refused write freed or leaked space")
        conn.close()

        # Space back, restart: the epoch check passes, everything stored before opens.
        self.disk.empty()
        self.restart()
        file_epoch, db_epoch = self.epochs()
        self.assertEqual(file_epoch, db_epoch)
        after = s.db_snapshot()
        for table in ("credentials", "hosts", "audit"):
            self.assertEqual(after[table], before[table], f"{table} changed across the full disk and restart")
        for name, secret in live.items():
            self.assert_opens_with(name, secret, "after", header=name == "keyed")
        code, doc, _ = self.use("gone", "after")
        self.assertEqual((code, doc["error"]["code"]), (403, "ALN_ERR_REVOKED"))
        self.audit_rows()

        # Writes work again.
        code, _, raw = self.http_put("fresh", new_secret)
        self.assertEqual(code, 201, raw)
        code, _, raw = self.http_put("gh", repl_secret, replace=True)
        self.assertEqual(code, 201, raw)
        code, _, raw = s.http("DELETE", "/v1/credentials/keyed", token=s.operator_token)
        self.assertEqual(code, 200, raw)
        self.assert_opens_with("fresh", new_secret, "again")
        self.assert_opens_with("gh", repl_secret, "again")
        self.assert_opens_with("rot", rot_v2, "again")
        code, doc, _ = self.use("keyed", "again")
        self.assertEqual((code, doc["error"]["code"]), (403, "ALN_ERR_REVOKED"))
        self.assertEqual(self.check_rows(), {"fresh": 1, "gh": 2, "rot": 2})
        rows = self.audit_rows()
        for action, name in [("put", "fresh"), ("put", "gh"), ("revoke", "keyed")]:
            self.assertEqual(rows.count((action, name, OK)), 1 + (name == "gh"), (action, name))
        file_epoch, db_epoch = self.epochs()
        self.assertEqual(file_epoch, db_epoch)
        self.assert_no_secret_leaked([*secrets.values(), rot_v2, new_secret, repl_secret])

    def test_use_on_full_disk_sends_nothing_upstream(self):
        """No audit row, no use: with the disk full the enclave cannot record a use,
        so it must refuse it before the request leaves, not after."""
        s = self.make_stack(epoch_on_full_disk=False)
        secret = b"sk-diskfull-use-" + os.urandom(8).hex().encode()
        s.cli("credential", "add", "gh", "--bearer", "--allow", s.upstream("/v1/"), "--ca", s.ca_crt, stdin=secret)
        self.assert_opens_with("gh", secret, "before")
        self.restart()
        conn = self.connect()
        before = s.db_snapshot()
        self.disk.fill()

        log_before = len(s.nginx_log())
        status, message, fields = self.rpc(conn, request(USE, pb.use_credential("gh", "GET", s.upstream("/v1/gh/rpc"))))
        code, doc, raw = self.use("gh", "http")
        self.assertEqual((status, message), (ERR_DISK_FULL, DISK_FULL_MSG))
        self.assertNotIn(USE, fields, "an unaudited use was answered")
        self.assert_http_disk_full((code, doc, raw), "use")
        self.assertNotIn(b"/v1/gh/http", raw, "the upstream answer reached the caller")
        self.assertEqual(s.db_snapshot(), before)
        conn.close()

        self.disk.empty()
        self.assert_opens_with("gh", secret, "after")
        rows = self.audit_rows()
        self.assertEqual([r for r in rows if r[0] == "use"], [("use", "gh", OK)] * 2, "audit rows of the uses")
        self.assert_no_secret_leaked([secret])
        # Last, so that everything above is checked even while this fails. Read only
        # now: nginx logs in order, and the line of the use above has been waited for.
        # Request lines only: the failure message must not carry the secret either.
        sent_upstream = s.nginx_log()[log_before:]
        reached = [ln.split(" auth=")[0] for ln in sent_upstream.splitlines() if "/v1/gh/after " not in ln]
        injected = secret.decode() in sent_upstream.replace(f"GET /v1/gh/after auth=[Bearer {secret.decode()}]", "")
        self.assertEqual(reached, [], "the enclave performed a use it could not audit: with the disk full the request "
                         f"still reached the upstream (credential injected: {injected}), and only the missing audit "
                         "row turned the answer into ALN_ERR_DISK_FULL; enclave/server.c handle_use calls "
                         "aln_upstream_perform before the audit append")

    def test_disk_fills_during_a_burst_of_puts(self):
        """Puts and replaces until the disk runs out, and some more: each is either
        acknowledged and kept, or refused as disk full and absent; nothing is half
        done. The epoch file shares the full disk: a commit that fits in the WAL's
        leftover pages can stand while its epoch record fails, and the next start
        repairs it."""
        s = self.make_stack(epoch_on_full_disk=True)
        rng = random.Random(SEED)
        where = f"seed {SEED} (ALN_DISKFULL_SEED)"
        conn = self.connect()
        self.disk.leave_free(BURST_HEADROOM_PAGES)
        binding = self.binding(s.upstream("/v1/"))
        model = {}  # name -> (version, secret) of every acknowledged write
        acked, refused, first_failure, late = [], [], None, 0
        for i in range(BURST_MAX):
            if model and rng.random() < 0.3:
                name, replace = rng.choice(sorted(model)), True
            else:
                name, replace = f"burst-{i:03d}", False
            # Bearer tokens nginx logs whole (it takes header lines up to 8 KiB).
            secret = f"sk-burst-{i:03d}-".encode() + bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                                                            for _ in range(rng.randint(16, 6000)))
            status, message, fields = self.rpc(conn, request(PUT, pb.put_credential(name, secret, binding,
                                                                                      replace=replace)))
            if status == OK:
                late += first_failure is not None
                info = pb.parse_single_credential(fields[PUT])
                want = model[name][0] + 1 if replace else 1
                self.assertEqual((info["name"], info["version"], info["revoked"]), (name, want, False), where)
                model[name] = (want, secret)
                acked.append((name, secret))
            else:
                self.assertEqual((status, message), (ERR_DISK_FULL, DISK_FULL_MSG), f"op {i} ({name}), {where}")
                self.assertNotIn(PUT, fields)
                refused.append((name, secret))
                first_failure = i if first_failure is None else first_failure
                if i - first_failure >= FAILURES_AFTER_FIRST:
                    break
        self.assertIsNotNone(first_failure, f"the disk never filled in {BURST_MAX} puts ({where})")
        self.assertGreater(first_failure, 0, f"the headroom took no put at all ({where})")
        self.assertEqual(self.rpc_list(conn), {n: (v, False) for n, (v, _) in model.items()}, where)
        conn.close()
        # A commit on the full disk may leave the epoch file behind; it says so plainly.
        warnings = [ln for ln in s.enclave.text().splitlines() if "WARNING" in ln]
        for ln in warnings:
            self.assertIn("is committed but recording it outside the data dir failed", ln)

        # Stop while still full (the closing checkpoint may fail: the WAL then stays),
        # free the space, start: the epoch is brought level, every acknowledged write
        # is there and opens with its own secret.
        self.stop_enclave()
        self.disk.empty()
        p = self.start_enclave()
        self.assertIsNone(p.p.poll(), f"enclave refused to start after the disk emptied ({where}):\n{p.text()}")
        s.enclave = p
        s.start_daemon()
        file_epoch, db_epoch = self.epochs()
        self.assertEqual(file_epoch, db_epoch, f"epoch file not repaired ({where})")
        conn = self.connect()
        self.assertEqual(self.rpc_list(conn), {n: (v, False) for n, (v, _) in model.items()}, where)
        self.assertEqual(self.check_rows(), {n: v for n, (v, _) in model.items()}, where)
        for name, (_, secret) in sorted(model.items()):
            self.assert_opens_with(name, secret, "after")
        rows = self.audit_rows()
        for name in model:
            # Every acknowledged put has its row; no row claims a put that was refused.
            self.assertEqual(rows.count(("put", name, OK)), sum(n == name for n, _ in acked), f"{name}, {where}")
        for name in {n for n, _ in refused} - set(model):
            self.assertNotIn(("put", name, OK), rows, f"{name}, {where}")
        self.assert_no_secret_leaked([sec for _, sec in acked + refused])
        print(f"\ndisk full burst, {where}: {len(acked)} puts acknowledged, {len(refused)} refused, the first "
              f"refusal at op {first_failure} ({late} acknowledged after it); {len(warnings)} epoch records deferred "
              "by the full disk", file=sys.stderr)

    def test_commit_on_full_disk_defers_the_epoch_record_and_the_start_repairs_it(self):
        """A failed put leaves the WAL pages it managed to allocate behind; its refusal
        audit row then commits in them, while the epoch file (on the same full disk)
        cannot be replaced. The commit stands, the enclave says so, and from then on it
        refuses everything (reads too) until the record can be written, so the record
        is never more than that one write behind; a start with space repairs it. The
        disk is given back one block at a time until that happens, so the test does
        not depend on the escrow's page counts."""
        s = self.make_stack(epoch_on_full_disk=True)
        secret = b"sk-diskfull-epoch-" + os.urandom(8).hex().encode()
        s.cli("credential", "add", "gh", "--bearer", "--allow", s.upstream("/v1/"), "--ca", s.ca_crt, stdin=secret)
        self.restart()
        conn = self.connect()
        big_secret = b"sk-diskfull-big-" + os.urandom(8000).hex().encode()[:15000]  # needs more pages than given
        big = request(PUT, pb.put_credential("big", big_secret, self.binding(s.upstream("/v1/"))))
        self.disk.fill()
        file_epoch, db_epoch = self.epochs()
        self.assertEqual(file_epoch, db_epoch)
        for step in range(32):
            self.disk.release(1)
            self.assert_disk_full(self.rpc(conn, big), f"put with {step + 1} blocks given back")
            if "WARNING" in s.enclave.text():
                break
        else:
            self.fail("no refusal was audited with 32 blocks given back")
        self.assertEqual(self.disk.free_blocks(), (0, 0))
        log = s.enclave.text()
        self.assertRegex(log, r"WARNING: escrow epoch (\d+) .*is committed but recording it outside the data dir "
                         r"failed: .*; the write stands, and every operation is refused until the record can be "
                         r"written")
        self.assertEqual(self.epochs(), (file_epoch, db_epoch + 1), "the refusal's row did not commit alone")
        self.assertEqual(self.audit_rows()[-1], ("put", "big", ERR_DISK_FULL))
        # The record is one behind: nothing proceeds, not even a use (whose audit row
        # would move the database further ahead of it), and nothing is committed.
        before = s.nginx_log()
        for _ in range(3):
            self.assert_disk_full(self.rpc(conn, request(USE, pb.use_credential("gh", "GET", s.upstream("/v1/user")))),
                                  "use while behind")
            self.assert_disk_full(self.rpc(conn, big), "put while behind")
        self.assertEqual(s.nginx_log(), before, "a use went upstream while the epoch record was behind")
        self.assertEqual(self.epochs(), (file_epoch, db_epoch + 1), "the database moved on while the record lagged")
        self.assertEqual(self.rpc_list(conn), {"gh": (1, False)})
        conn.close()

        # Still full: a start has to bring the record level first and cannot; it must
        # not run with the record behind. With space it repairs it.
        self.stop_enclave()
        self.disk.fill()  # the stop's checkpoint may have deleted the WAL and freed its blocks
        p = self.start_enclave()
        if p.p.poll() is None:
            s.enclave = p
            self.assertEqual(*self.epochs(), "started on a full disk with the epoch record behind")
            self.stop_enclave()
        self.disk.empty()
        p = self.start_enclave()
        self.assertIsNone(p.p.poll(), f"enclave refused to start after the disk emptied:\n{p.text()}")
        s.enclave = p
        s.start_daemon()
        self.assertEqual(self.epochs(), (db_epoch + 1, db_epoch + 1), "the start did not repair the epoch file")
        self.assert_opens_with("gh", secret, "after")
        self.audit_rows()
        self.assert_no_secret_leaked([secret, big_secret])

    def test_start_on_full_disk_is_refused_clearly_and_changes_nothing(self):
        s = self.make_stack(epoch_on_full_disk=True)
        secret = b"sk-diskfull-start-" + os.urandom(8).hex().encode()
        s.cli("credential", "add", "gh", "--bearer", "--allow", s.upstream("/v1/"), "--ca", s.ca_crt, stdin=secret)
        self.assert_opens_with("gh", secret, "before")
        self.stop_enclave()  # clean: the WAL and its index file are gone

        def files():
            out = {}
            for path in (f"{s.enclave_dir}/escrow.db", f"{s.enclave_dir}/kek", s.epoch_file):
                with open(path, "rb") as f:
                    out[path] = f.read()
            return out

        stored = files()
        self.disk.fill()
        p = self.start_enclave()
        started = p.p.poll() is None
        if started:  # a start that only reads would do, if the store stays as it was
            s.enclave = p
            self.stop_enclave()
        else:
            self.assertNotEqual(p.p.returncode, 0)
        err = p.text()
        self.assertEqual(files(), stored, "a start on a full disk changed the store")

        self.disk.empty()
        p = self.start_enclave()
        self.assertIsNone(p.p.poll(), f"enclave refused to start after the disk emptied:\n{p.text()}")
        s.enclave = p
        s.start_daemon()
        self.assertEqual(*self.epochs())
        self.assert_opens_with("gh", secret, "after")
        self.assert_no_secret_leaked([secret])
        if not started:
            self.assertIn("storage full", err,
                          "the enclave refused to start on a full disk without saying the disk is full")


if __name__ == "__main__":
    unittest.main()
