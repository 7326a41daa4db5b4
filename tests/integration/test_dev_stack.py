"""The README's first command: deploy/local/run starts the local dev stack in the
foreground, an operator and an agent can use it as the banner says, and a signal
to the script stops both processes and removes the host's socket."""

import json
import os
import signal
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from harness import free_port, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class DevStack(unittest.TestCase):
    def test_run_use_and_stop(self):
        d = tempfile.mkdtemp(prefix="aileron-dev-")
        enclave_addr, http_port = f"127.0.0.1:{free_port()}", free_port()
        env = dict(os.environ, AILERON_DEV_DIR=d, AILERON_ENCLAVE_ADDR=enclave_addr,
                   AILERON_HTTP_ADDR=f"127.0.0.1:{http_port}")
        log = open(os.path.join(d, "run.log"), "w+b")
        p = subprocess.Popen([os.path.join(ROOT, "deploy/local/run")], env=env, stdout=log, stderr=log,
                             start_new_session=True)
        try:
            def banner():
                if p.poll() is not None:  # the script failed (install or build): no point waiting
                    log.seek(0)
                    raise AssertionError("deploy/local/run exited early:\n" + log.read().decode("utf-8", "replace"))
                log.seek(0)
                return b"Ctrl-C stops both processes" in log.read()
            wait_for(banner, timeout=240, what="the dev stack banner")
            cli = [os.path.join(ROOT, "build/default/host/aileron"), "--state-dir", f"{d}/host"]
            add = subprocess.run(cli + ["credential", "add", "demo", "--bearer", "--allow", "https://api.example.com/"],
                                 input=b"dev-secret-123", capture_output=True)
            self.assertEqual(add.returncode, 0, add.stderr)
            token = subprocess.run(cli + ["session", "new", "--ttl", "60"], capture_output=True,
                                   check=True).stdout.decode().splitlines()[0]
            # The banner's agent call, over the loopback HTTP listener: the destination
            # check answers before any network is needed.
            req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/credentials/demo/request",
                                         data=json.dumps({"method": "GET", "url": "https://evil.example/"}).encode(),
                                         headers={"Authorization": f"Bearer {token}"})
            with self.assertRaises(urllib.error.HTTPError) as ctx:
                urllib.request.urlopen(req, timeout=30)
            self.assertEqual(ctx.exception.code, 403)
            self.assertEqual(json.loads(ctx.exception.read())["error"]["code"], "ALN_ERR_DEST_NOT_ALLOWED")
        finally:
            p.send_signal(signal.SIGTERM)
            rc = p.wait(30)
            log.seek(0)
            out = log.read().decode("utf-8", "replace")
            log.close()
        self.assertEqual(rc, 0, out)
        self.assertIn("aileron-enclave: stopped", out)
        self.assertIn("aileron dev stack stopped.", out)
        self.assertFalse(os.path.exists(f"{d}/host/aileron.sock"), "the daemon did not clean up its socket")
        pids = subprocess.run(["pgrep", "-f", d], capture_output=True).stdout.split()
        self.assertEqual(pids, [], "a dev stack process outlived the script")


if __name__ == "__main__":
    unittest.main()
