"""The first real brokered call: enclave + host + nginx over HTTPS on loopback.
An agent with a session token uses a credential it never sees; the enclave injects
it, checks the destination, verifies upstream TLS, redacts echoes, and audits."""

import json
import os
import random
import sqlite3
import unittest

import pb
from harness import LIST, PUT, REVOKE, Stack, attested_conn, rpc, secret_forms

SECRET = b"sk-live-aileron-TEST-6f1c2d9e8b7a4c3d2e1f0a9b"
HEADER_SECRET = b"hk-aileron-TEST-0c9d8e7f6a5b4c3d2e1f"


class BrokeredCall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack()
        s = cls.s
        s.cli("credential", "add", "gh", "--bearer", "--allow", s.upstream("/v1/"), "--ca", s.ca_crt,
              stdin=SECRET + b"\n")
        s.cli("credential", "add", "keyed", "--header", "X-Api-Key", "--allow", s.upstream("/keyed"),
              "--ca", s.ca_crt, stdin=HEADER_SECRET)
        s.cli("credential", "add", "noca", "--bearer", "--allow", s.upstream("/v1/"), stdin=SECRET)
        cls.token = s.session()

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def use(self, name, url, method="GET", **extra):
        body = {"method": method, "url": url, **extra}
        return self.s.http("POST", f"/v1/credentials/{name}/request", body, token=self.token)

    def test_bearer_injected_and_echo_redacted(self):
        before = self.s.nginx_log()
        code, doc, raw = self.use("gh", self.s.upstream("/v1/user?x=1"))
        self.assertEqual(code, 200, raw)
        self.assertEqual(doc["status"], 200)
        seen = self.s.nginx_log()[len(before):]
        self.assertIn("GET /v1/user?x=1 auth=[Bearer " + SECRET.decode() + "]", seen)
        # nginx echoed the Authorization header in its body and a header: redacted
        self.assertIn("[REDACTED]", doc["body"])
        echo = [v for n, v in doc["headers"] if n.lower() == "x-echo-auth"]
        self.assertEqual(echo, ["Bearer [REDACTED]"])
        self.assertNotIn(SECRET, raw)

    def test_header_injection(self):
        before = self.s.nginx_log()
        code, doc, raw = self.use("keyed", self.s.upstream("/keyed/items"), method="POST", body="{}")
        self.assertEqual(code, 200, raw)
        seen = self.s.nginx_log()[len(before):]
        # nginx logs an absent header as "-": no Authorization was sent for this binding
        self.assertIn("POST /keyed/items auth=[-] key=[" + HEADER_SECRET.decode() + "]", seen)
        self.assertNotIn(HEADER_SECRET, raw)

    def test_outside_prefix_refused_before_any_request(self):
        for url in [self.s.upstream("/admin"), self.s.upstream("/v1/../admin"), self.s.upstream("/v10/x"),
                    f"http://127.0.0.1:{self.s.ng_port}/v1/user", "https://127.0.0.1.evil.test/v1/",
                    f"https://user@127.0.0.1:{self.s.ng_port}/v1/user"]:
            before = self.s.nginx_log()
            code, doc, raw = self.use("gh", url)
            self.assertIn(code, (400, 403), (url, raw))
            self.assertIn(doc["error"]["code"], ("ALN_ERR_DEST_NOT_ALLOWED", "ALN_ERR_BAD_URL"), url)
            self.assertEqual(self.s.nginx_log(), before, f"a request reached nginx for {url}")
        code, doc, _ = self.use("gh", self.s.upstream("/admin"))
        self.assertEqual((code, doc["error"]["code"]), (403, "ALN_ERR_DEST_NOT_ALLOWED"))
        self.assertIn("destination not allowed", doc["error"]["message"])

    def test_upstream_tls_is_verified(self):
        # "noca" does not trust the test CA: the system store alone must refuse nginx.
        before = self.s.nginx_log()
        code, doc, raw = self.use("noca", self.s.upstream("/v1/user"))
        self.assertEqual(code, 502, raw)
        self.assertEqual(doc["error"]["code"], "ALN_ERR_UPSTREAM_TLS")
        self.assertEqual(self.s.nginx_log(), before)

    def test_list_shows_metadata_only(self):
        p = self.s.cli("credential", "list")
        out = p.stdout
        self.assertIn(b"gh", out)
        self.assertIn(b"keyed", out)
        for form in secret_forms(SECRET) + secret_forms(HEADER_SECRET):
            self.assertNotIn(form, out)

    def test_revoke_then_use_refused(self):
        self.s.cli("credential", "add", "temp", "--bearer", "--allow", self.s.upstream("/v1/"), "--ca",
                   self.s.ca_crt, stdin=b"temp-secret-aileron-123456")
        code, _, _ = self.use("temp", self.s.upstream("/v1/a"))
        self.assertEqual(code, 200)
        self.s.cli("credential", "revoke", "temp")
        before = self.s.nginx_log()
        code, doc, _ = self.use("temp", self.s.upstream("/v1/a"))
        self.assertEqual((code, doc["error"]["code"]), (403, "ALN_ERR_REVOKED"))
        self.assertEqual(self.s.nginx_log(), before)

    def test_unknown_credential(self):
        code, doc, _ = self.use("nope", self.s.upstream("/v1/a"))
        self.assertEqual((code, doc["error"]["code"]), (404, "ALN_ERR_NOT_FOUND"))

    def test_no_audit_row_no_answer(self):
        # Make every audit insert fail (as a full disk would) and check the enclave
        # withholds the upstream answer rather than answering unrecorded.
        db = sqlite3.connect(f"{self.s.enclave_dir}/escrow.db", timeout=10)
        db.execute("CREATE TRIGGER it_no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'no'); END")
        db.commit()
        try:
            code, doc, raw = self.use("gh", self.s.upstream("/v1/unrecorded"))
            self.assertEqual((code, doc["error"]["code"]), (502, "ALN_ERR_STORE"), raw)
            self.assertNotIn(b"/v1/unrecorded", raw)
        finally:
            db.execute("DROP TRIGGER it_no_audit")
            db.commit()
            db.close()
        code, _, _ = self.use("gh", self.s.upstream("/v1/recorded"))
        self.assertEqual(code, 200)

    def test_zz_audit_rows_and_secret_nowhere(self):
        # Runs last (name order): every other test has used the stack by now.
        self.use("gh", self.s.upstream("/v1/audit-me"))
        self.use("gh", self.s.upstream("/admin"))
        db = sqlite3.connect(f"file:{self.s.enclave_dir}/escrow.db?mode=ro", uri=True)
        rows = db.execute("SELECT action, credential, destination, decision, actor FROM audit ORDER BY seq").fetchall()
        db.close()
        uses = [r for r in rows if r[0] == "use"]
        self.assertIn(("use", "gh", self.s.upstream("/v1/audit-me"), "allow"), [r[:4] for r in uses])
        self.assertIn(("use", "gh", self.s.upstream("/admin"), "deny"), [r[:4] for r in uses])
        self.assertTrue(all(r[4].startswith("session:") for r in uses), uses)
        self.assertTrue(any(r[0] == "put" for r in rows))

        haystacks = [(name, data) for name, data in self.s.enclave_files()]
        for p in self.s.procs:
            with open(p.log_path, "rb") as f:
                haystacks.append((os.path.basename(p.log_path), f.read()))
        haystacks.append(("audit rows", repr(rows).encode()))
        haystacks += [(f"response {i}", r) for i, r in enumerate(self.s.responses)]
        for secret in (SECRET, HEADER_SECRET):
            for form in secret_forms(secret):
                for name, data in haystacks:
                    self.assertNotIn(form, data, f"secret material found in {name}")


class SystemTrustStore(unittest.TestCase):
    """Upstream TLS trusts the system store, not only a credential's own CA: with the
    test CA as the enclave's system bundle (SSL_CERT_FILE), a credential added
    without --ca reaches nginx. If the system store were never loaded, this fails."""

    def test_credential_without_ca_uses_the_system_store(self):
        s = Stack(enclave_env={"SSL_CERT_FILE": "{dir}/ca.crt"})
        try:
            s.cli("credential", "add", "sys", "--bearer", "--allow", s.upstream("/v1/"), stdin=SECRET)
            token = s.session()
            code, doc, raw = s.http("POST", "/v1/credentials/sys/request",
                                    {"method": "GET", "url": s.upstream("/v1/sys")}, token=token)
            self.assertEqual((code, doc["status"]), (200, 200), raw)
            self.assertIn("GET /v1/sys auth=[Bearer " + SECRET.decode() + "]", s.nginx_log())
        finally:
            s.close()


class Paging(unittest.TestCase):
    """GET /v1/credentials answers one page at a time, through the real stack: 250
    credentials (stored straight through the enclave's RPCs, in shuffled order,
    some replaced and some revoked) come back in name order, each exactly once, in
    pages of the size asked with next_after pointing at the next; the CLI follows
    every page."""

    NUM = 250

    @classmethod
    def setUpClass(cls):
        cls.s = s = Stack()
        rng = random.Random(250)
        # Names that sort differently by case, digit and punctuation: the enclave's
        # order (bytewise) is what Python's sorted() gives for ASCII.
        stems = ["A", "a", "Z.", "b_", "0-", "q"]
        cls.names = [f"{stems[i % len(stems)]}{rng.randrange(10**6):06d}-{i}" for i in range(cls.NUM)]
        order = cls.names[:]
        rng.shuffle(order)
        binding = pb.binding(pb.BEARER, [s.upstream("/v1/")])
        conn = attested_conn(s.enclave_port, s.host_crt, f"{s.host_dir}/host.key")
        try:
            for i, name in enumerate(order):
                # Both ways of saying "a static secret": the kind left out, and said.
                kind = pb.KIND_SECRET if i % 2 else pb.KIND_UNSPECIFIED
                status, message, _ = rpc(conn, PUT, pb.put_credential_of_kind(name, b"page-secret-%d" % i, binding,
                                                                              kind))
                assert status == 0, (name, message)
            # A second version of some must not list the name twice.
            cls.replaced = set(order[:5])
            for name in cls.replaced:
                status, message, _ = rpc(conn, PUT, pb.put_credential(name, b"page-secret-v2", binding, replace=True))
                assert status == 0, (name, message)
            cls.revoked = set(order[5:9])
            for name in cls.revoked:
                status, message, _ = rpc(conn, REVOKE, pb.revoke_credential(name))
                assert status == 0, (name, message)
        finally:
            conn.close()
        cls.names.sort()

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def get(self, query):
        return self.s.http("GET", f"/v1/credentials{query}", token=self.s.operator_token)

    def check_entries(self, creds):
        for c in creds:
            self.assertEqual(c["kind"], "secret", c)
            self.assertEqual(c["version"], 2 if c["name"] in self.replaced else 1, c)
            self.assertEqual(c["revoked"], c["name"] in self.revoked, c)

    def test_pages_of_100(self):
        seen, after, sizes = [], None, []
        for _ in range(10):  # bounded: three pages are expected
            code, doc, raw = self.get("?limit=100" + (f"&after={after}" if after is not None else ""))
            self.assertEqual(code, 200, raw)
            creds = doc["credentials"]
            sizes.append(len(creds))
            self.check_entries(creds)
            seen += [c["name"] for c in creds]
            if "next_after" not in doc:
                self.assertEqual(set(doc), {"credentials"})
                break
            # next_after is the last name of the page: the next one starts after it.
            self.assertEqual(doc["next_after"], creds[-1]["name"])
            after = doc["next_after"]
        self.assertEqual(sizes, [100, 100, 50])
        self.assertEqual(seen, self.names, "pages out of order, with a gap or a duplicate")

    def test_default_and_largest_page(self):
        code, doc, _ = self.get("")
        self.assertEqual(code, 200)
        self.assertEqual([c["name"] for c in doc["credentials"]], self.names[:100])
        self.assertEqual(doc["next_after"], self.names[99])
        code, doc, _ = self.get("?limit=1000")
        self.assertEqual(code, 200)
        self.assertEqual([c["name"] for c in doc["credentials"]], self.names)
        self.assertNotIn("next_after", doc)

    def test_after_a_name_not_stored(self):
        # after need not name a stored credential: the page starts past it in order.
        probe = self.names[120] + "0"
        self.assertNotIn(probe, self.names)
        code, doc, _ = self.get(f"?limit=5&after={probe}")
        self.assertEqual(code, 200)
        self.assertEqual([c["name"] for c in doc["credentials"]], self.names[121:126])
        code, doc, _ = self.get(f"?limit=5&after={self.names[-1]}")
        self.assertEqual((code, doc), (200, {"credentials": []}))

    def test_cli_lists_every_credential(self):
        out = json.loads(self.s.cli("credential", "list").stdout)
        self.assertEqual(set(out), {"credentials"})
        self.assertEqual([c["name"] for c in out["credentials"]], self.names)
        self.check_entries(out["credentials"])

    def test_bad_page_queries_refused(self):
        before = self.s.db_snapshot()
        for query, code_name, words in [("?limit=0", "ALN_ERR_USAGE", "limit must be"),
                                        ("?limit=1001", "ALN_ERR_USAGE", "limit must be"),
                                        ("?limit=-1", "ALN_ERR_USAGE", "limit must be"),
                                        ("?limit=x", "ALN_ERR_USAGE", "limit must be"),
                                        ("?after=../etc", "ALN_ERR_BAD_NAME", "after must be"),
                                        ("?after=-x", "ALN_ERR_BAD_NAME", "after must be"),
                                        ("?page_size=5", "ALN_ERR_USAGE", "unknown query parameter"),
                                        ("?limit=5&limit=6", "ALN_ERR_USAGE", "more than once")]:
            code, doc, raw = self.get(query)
            self.assertEqual((code, doc["error"]["code"]), (400, code_name), (query, raw))
            self.assertIn(words, doc["error"]["message"], query)
        self.assertEqual(self.s.db_snapshot(), before, "a refused list changed the escrow")
        code, doc, _ = self.get("?limit=1000")
        self.assertEqual([c["name"] for c in doc["credentials"]], self.names)


if __name__ == "__main__":
    unittest.main()
