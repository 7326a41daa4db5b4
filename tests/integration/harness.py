"""Real-process harness for integration tests: a test CA, an nginx HTTPS upstream,
aileron-enclave (local provider) and the aileron host daemon, all on loopback in a
temporary directory. Standard library only, so it is an independent client: it
speaks HTTP to the host and hand-encodes protobuf frames to the enclave."""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import ssl
import struct
import subprocess
import tempfile
import threading
import time

ENCLAVE_BIN = os.environ.get("ALN_ENCLAVE_BIN", "aileron-enclave")
HOST_BIN = os.environ.get("ALN_HOST_BIN", "aileron")
NGINX_BIN = os.environ.get("ALN_NGINX_BIN", "/usr/sbin/nginx")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class Proc:
    """A background process whose stderr is copied to a log file."""

    def __init__(self, argv, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=env)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


def make_pki(d):
    """A test CA and a server certificate for 127.0.0.1, made by the openssl CLI."""
    ca_key, ca_crt = f"{d}/ca.key", f"{d}/ca.crt"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=aileron test CA"])
    srv_key, srv_csr, srv_crt = f"{d}/srv.key", f"{d}/srv.csr", f"{d}/srv.crt"
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", srv_key, "-out", srv_csr, "-subj", "/CN=127.0.0.1"])
    ext = f"{d}/ext.cnf"
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run(["openssl", "x509", "-req", "-in", srv_csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-out", srv_crt, "-days", "2", "-extfile", ext])
    return ca_crt, srv_crt, srv_key


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
  client_body_temp_path {d}/tmp-body;
  proxy_temp_path {d}/tmp-proxy;
  fastcgi_temp_path {d}/tmp-fcgi;
  uwsgi_temp_path {d}/tmp-uwsgi;
  scgi_temp_path {d}/tmp-scgi;
  log_format seen '$request_method $request_uri auth=[$http_authorization] key=[$http_x_api_key]';
  access_log {d}/nginx-access.log seen;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    default_type application/json;
    # Echo what the upstream saw, so the tests can prove the enclave redacts echoes.
    location / {{
      add_header X-Echo-Auth "$http_authorization" always;
      return 200 '{{"path":"$uri","auth":"$http_authorization","key":"$http_x_api_key"}}';
    }}
  }}
}}
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Stack:
    """nginx + enclave + host daemon in one temporary directory."""

    def __init__(self, dev=True, provider="local", enclave_env=None, enclave_dir=None, epoch_file=None):
        """|provider| and |enclave_env| (extra variables) configure the enclave.
        |enclave_dir| and |epoch_file| put its data dir and rollback epoch file
        elsewhere than in the stack's directory (e.g. on a small filesystem the
        caller mounted); the caller then owns and removes them."""
        self.dir = tempfile.mkdtemp(prefix="aileron-it-")
        os.chmod(self.dir, 0o700)
        self.procs = []
        self.responses = []  # every raw HTTP response body the tests saw
        self.ca_crt, crt, key = make_pki(self.dir)
        self.ng_port = free_port()
        with open(f"{self.dir}/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(d=self.dir, port=self.ng_port, crt=crt, key=key))
        self.nginx = self._start([NGINX_BIN, "-c", f"{self.dir}/nginx.conf", "-e", f"{self.dir}/nginx-error.log"],
                                 "nginx.log")
        wait_for(lambda: self._port_open(self.ng_port), what="nginx")

        self.enclave_dir = enclave_dir or f"{self.dir}/enclave"
        self.host_dir = f"{self.dir}/host"
        out = run([HOST_BIN, "host-key", "--state-dir", self.host_dir]).stdout.decode()
        self.host_crt = f"{self.host_dir}/host.crt"
        assert os.path.exists(self.host_crt), out
        # The rollback epoch file sits next to the data dir, never inside it.
        self.epoch_file = epoch_file or f"{self.dir}/epoch"
        # Values may name files of this stack: "{dir}" is its directory.
        extra = {k: v.format(dir=self.dir) for k, v in (enclave_env or {}).items()}
        self.enclave_env = {**os.environ, "AILERON_TEE_PROVIDER": provider, "AILERON_EPOCH_FILE": self.epoch_file,
                            **extra}
        run([ENCLAVE_BIN, "host", "enroll", self.host_crt, "--label", "it-host", "--data-dir", self.enclave_dir],
            env=self.enclave_env)
        self.enclave = self._start([ENCLAVE_BIN, "serve", "--data-dir", self.enclave_dir, "--listen", "127.0.0.1:0"],
                                   "enclave.log", env=self.enclave_env)
        wait_for(lambda: "listening on" in self.enclave.text(), what="enclave")
        self.enclave_port = int(re.search(r"port (\d+)", self.enclave.text()).group(1))
        self.socket = f"{self.host_dir}/aileron.sock"
        # A TPM-backed enclave proves itself with quotes: the host trusts its AK and
        # today's PCR values, as an operator would after checking them.
        self.policy = self.tpm_policy() if provider == "tpm" else None
        self.start_daemon(dev)

    def tpm_policy(self):
        """Writes the host policy for the tpm enclave (`aileron-enclave tpm policy`)."""
        out = run([ENCLAVE_BIN, "tpm", "policy", "--data-dir", self.enclave_dir], env=self.enclave_env).stdout
        path = f"{self.dir}/tpm-policy.yaml"
        with open(path, "wb") as f:
            f.write(b"version: 1\nkinds:\n" + out)
        return path

    def start_daemon(self, dev=True, policy=None):
        """--policy |policy| (a YAML path; by default the stack's own policy, for a tpm
        enclave), else --dev."""
        argv = [HOST_BIN, "daemon", "--state-dir", self.host_dir, "--socket", self.socket,
                "--enclave", f"127.0.0.1:{self.enclave_port}"]
        policy = policy if policy is not None else getattr(self, "policy", None)
        argv += ["--policy", policy] if policy is not None else (["--dev"] if dev else [])
        self.daemon = self._start(argv, f"daemon-{len(self.procs)}.log")
        wait_for(lambda: os.path.exists(self.socket) and "listening" in self.daemon.text(), what="host daemon")
        with open(f"{self.host_dir}/operator.token") as f:
            self.operator_token = f.read().strip()

    def stop_daemon(self):
        self.daemon.stop()
        wait_for(lambda: not os.path.exists(self.socket), what="socket removal")

    def _start(self, argv, log, env=None):
        p = Proc(argv, f"{self.dir}/{log}", env)
        self.procs.append(p)
        return p

    @staticmethod
    def _port_open(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        if os.environ.get("ALN_KEEP_TEST_DIR") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- host HTTP API -------------------------------------------------------
    def http(self, method, path, body=None, token=None, raw=None):
        conn = UnixHTTPConnection(self.socket)
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        self.responses.append(payload)
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = None
        return r.status, doc, payload

    def http_declared_length(self, method, path, length, token):
        """Sends only the headers of a request declaring a |length|-byte body and
        reads the answer: a server that checks the size first answers at once."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(self.socket)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode())
        r = http.client.HTTPResponse(s)
        r.begin()
        body = r.read()
        s.close()
        self.responses.append(body)
        return r.status, json.loads(body)

    def cli(self, *args, stdin=None, check=True):
        p = subprocess.run([HOST_BIN, "--state-dir", self.host_dir, "--socket", self.socket, *args],
                           input=stdin, capture_output=True)
        self.responses.append(p.stdout + p.stderr)
        if check and p.returncode != 0:
            raise AssertionError(f"aileron {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
        return p

    def session(self, ttl=600):
        p = self.cli("session", "new", "--ttl", str(ttl))
        return p.stdout.decode().splitlines()[0].strip()

    def upstream(self, path=""):
        return f"https://127.0.0.1:{self.ng_port}{path}"

    def nginx_log(self):
        try:
            with open(f"{self.dir}/nginx-access.log") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # ---- enclave state, read independently ----------------------------------
    def db_snapshot(self):
        """A logical snapshot of every table in the escrow (read-only)."""
        db = sqlite3.connect(f"file:{self.enclave_dir}/escrow.db?mode=ro", uri=True)
        try:
            snap = {}
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
                snap[name] = db.execute(f'SELECT * FROM "{name}" ORDER BY rowid').fetchall()
            return snap
        finally:
            db.close()

    def enclave_files(self):
        out = []
        for root, _, files in os.walk(self.enclave_dir):
            for fn in files:
                with open(os.path.join(root, fn), "rb") as f:
                    out.append((fn, f.read()))
        return out


# ---- hand-made protobuf for talking to the enclave directly ---------------------
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    return varint((num << 3) | 2) + varint(len(data)) + data


def request(body_field, body=b""):
    """aileron.v1.Request{version=1, <body_field>=body}."""
    return varint(1 << 3) + varint(1) + field_bytes(body_field, body)


HEALTH, ATTEST, PUT, LIST, REVOKE, USE = 10, 11, 12, 13, 14, 15


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def parse_response(data):
    """Returns (status, message, {field: raw bytes}) from a Response message."""
    i, status, message, fields = 0, 0, "", {}
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(data, i)
            if num == 1:
                status = v
        elif wt == 2:
            ln, i = _read_varint(data, i)
            v, i = data[i:i + ln], i + ln
            if num == 2:
                message = v.decode()
            else:
                fields[num] = v
        else:
            raise ValueError("unexpected wire type")
    return status, message, fields


def _read_varint(data, i):
    shift = n = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def status_code(cat, num):
    return (cat << 8) | num


class EnclaveConn:
    """A raw TLS 1.3 client to the enclave with a chosen client identity."""

    def __init__(self, port, cert=None, key=None, tls12=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # trust comes from attestation, not the chain
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            ctx.load_cert_chain(cert, key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(raw)

    def send(self, data):
        self.s.sendall(data)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv_response(self):
        hdr = self.recv_exact(4)
        if hdr is None:
            return None
        (ln,) = struct.unpack(">I", hdr)
        body = self.recv_exact(ln)
        return None if body is None else parse_response(body)

    def closed_by_peer(self):
        try:
            return self.s.recv(1) == b""
        except (ssl.SSLError, ConnectionResetError, OSError):
            return True

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def make_client_identity(d, name):
    key, crt = f"{d}/{name}.key", f"{d}/{name}.crt"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", crt, "-days", "1", "-subj", f"/CN={name}"])
    return crt, key


def secret_forms(secret):
    """The secret and the encodings it could leak in."""
    return [secret, base64.b64encode(secret), secret.hex().encode(), hashlib.sha256(secret).hexdigest().encode()]


def attested_conn(port, cert, key):
    """An EnclaveConn with the identity |cert|/|key| that has completed Attest, so
    credential RPCs go through. The evidence is not checked: this client drives the
    enclave's RPCs directly (for speed, or to send what the host never would); the
    host's own checks are tested elsewhere."""
    conn = EnclaveConn(port, cert, key)
    conn.send(frame(request(ATTEST, field_bytes(1, os.urandom(32)))))
    resp = conn.recv_response()
    if resp is None or resp[0] != 0:
        conn.close()
        raise AssertionError(f"Attest refused: {resp}")
    return conn


def rpc(conn, body_field, body=b""):
    """Sends one request on |conn| and returns its (status, message, fields)."""
    conn.send(frame(request(body_field, body)))
    resp = conn.recv_response()
    if resp is None:
        raise AssertionError("the enclave closed the connection without an answer")
    return resp
