#!/usr/bin/env python3
"""Benchmark: the cost of brokering. Runs N HTTPS GETs to a local nginx directly
(baseline: a new TLS connection per request, as the enclave makes) and N of the
same GETs brokered through aileron (agent -> host -> attested enclave -> nginx),
in the same run, and prints requests/s and latency percentiles for both and their
ratio. Not a test: it asserts nothing and is not run by tests/run.
Usage: tests/bench/brokered_call_bench.py [N]   (after building the default preset)"""

import http.client
import os
import ssl
import statistics
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
build = os.path.join(here, "..", "..", "build", "default")
os.environ.setdefault("ALN_ENCLAVE_BIN", os.path.join(build, "enclave", "aileron-enclave"))
os.environ.setdefault("ALN_HOST_BIN", os.path.join(build, "host", "aileron"))
from harness import Stack  # noqa: E402


def timed(fn, n):
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    return time.perf_counter() - t0, sorted(lat)


def concurrent(fn, n, threads):
    """Runs |n| calls of |fn| spread over |threads| threads; returns requests/s."""
    per = n // threads
    ts = [threading.Thread(target=lambda: [fn() for _ in range(per)]) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads / (time.perf_counter() - t0)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    s = Stack()
    try:
        s.cli("credential", "add", "bench", "--bearer", "--allow", s.upstream("/v1/"), "--ca", s.ca_crt,
              stdin=b"bench-secret-0123456789abcdef")
        token = s.session()
        ctx = ssl.create_default_context(cafile=s.ca_crt)

        def direct():
            c = http.client.HTTPSConnection("127.0.0.1", s.ng_port, context=ctx)
            c.request("GET", "/v1/user", headers={"Authorization": "Bearer direct"})
            r = c.getresponse()
            r.read()
            c.close()
            assert r.status == 200

        def brokered():
            code, doc, _ = s.http("POST", "/v1/credentials/bench/request",
                                  {"method": "GET", "url": s.upstream("/v1/user")}, token=token)
            assert code == 200 and doc["status"] == 200, doc

        for f in (direct, brokered):  # warm up
            for _ in range(10):
                f()
        d_total, d_lat = timed(direct, n)
        b_total, b_lat = timed(brokered, n)

        def row(name, total, lat):
            p50 = statistics.median(lat) * 1e3
            p99 = lat[int(len(lat) * 0.99) - 1] * 1e3
            print(f"{name:<34} {n / total:9.1f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")

        print(f"brokered call vs direct HTTPS, {n} sequential GETs each, one machine")
        row("baseline: direct to nginx (TLS)", d_total, d_lat)
        row("aileron: agent->host->enclave->nginx", b_total, b_lat)
        print(f"ratio brokered/direct throughput: {d_total / b_total:.3f}  "
              f"(p50 overhead {(statistics.median(b_lat) - statistics.median(d_lat)) * 1e3:.2f} ms)")
        d_conc, b_conc = concurrent(direct, n, 4), concurrent(brokered, n, 4)
        print(f"4 concurrent clients: direct {d_conc:.1f} req/s, brokered {b_conc:.1f} req/s, "
              f"ratio {b_conc / d_conc:.3f}")
    finally:
        s.close()


if __name__ == "__main__":
    main()
