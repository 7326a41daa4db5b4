#!/usr/bin/env python3
"""Runs tests/bench/attest_bench (built in build/default) with an enclave to attest:
the dev stack's local enclave, and one with the tpm provider against a swtpm started
here. Prints the verification rates of each evidence kind beside OpenSSL's raw
verify rate of the same algorithm, and the median time to open an attested
connection (TCP + TLS 1.3 + Attest + appraisal) for each provider.

Usage: tests/bench/attest_bench.py [N]   (N connections per provider, default 200)"""

import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
build = os.environ.get("ALN_BUILD_DIR", os.path.join(here, "..", "..", "build", "default"))
sys.path.insert(0, os.path.join(here, "..", "integration"))
os.environ.setdefault("ALN_ENCLAVE_BIN", os.path.join(build, "enclave", "aileron-enclave"))
os.environ.setdefault("ALN_HOST_BIN", os.path.join(build, "host", "aileron"))
from harness import Stack  # noqa: E402
from test_tpm_provider import SwTpm  # noqa: E402

BENCH = os.path.join(build, "tests", "bench", "attest_bench")


def connect_bench(s, n, kinds_too):
    argv = [BENCH, "--enclave", f"127.0.0.1:{s.enclave_port}", "--key", f"{s.host_dir}/host.key",
            "--cert", f"{s.host_dir}/host.crt", "--n", str(n)]
    # The tpm enclave is appraised under the policy the stack wrote for it (its AK and PCRs).
    argv += ["--policy", s.policy] if s.policy is not None else ["--dev"]
    if not kinds_too:
        argv += ["--seconds", "0.2"]
    out = subprocess.run(argv, capture_output=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(out.stderr.decode())
    text = out.stdout.decode()
    return text if kinds_too else text[text.index("attested connection"):]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    s = Stack()
    try:
        print("provider local:")
        print(connect_bench(s, n, True))
    finally:
        s.close()
    tpm_dir = subprocess.run(["mktemp", "-d", "/tmp/aileron-bench-swtpm-XXXXXX"], capture_output=True,
                             check=True).stdout.decode().strip()
    swtpm = SwTpm(tpm_dir)
    try:
        s = Stack(provider="tpm", enclave_env={"AILERON_TPM_TCTI": swtpm.tcti})
        try:
            print("provider tpm (swtpm):")
            print(connect_bench(s, n, False))
        finally:
            s.close()
    finally:
        swtpm.stop()


if __name__ == "__main__":
    main()
