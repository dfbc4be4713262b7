"""End-to-end tests of edgeagent's northbound side as a process (with its seccomp allow-list on):

- mqtts:// with server verification and a client certificate against a real mosquitto TLS
  listener (require_certificate true): records POSTed to /v1/ingest reach the topic; the status
  topic holds a retained "online"; after kill -9 the broker publishes the retained "offline" will.
- TLS refusals (expired certificate, wrong host name, unknown CA) each give one clear log line and
  nothing is delivered; /health shows the uplink down with the same reason.
- http:// and https:// (client certificate required) batch uplinks: a python http.server checks the
  gzip'd JSON array bodies and the bearer token; 500s are retried and nothing is lost.

The PKI is made with the openssl CLI (an expired certificate via `openssl ca -startdate/-enddate`).
"""
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import bin_path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


PKI = r"""
set -e
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1 2>/dev/null; }
ec ca.key; openssl req -x509 -new -key ca.key -out ca.crt -days 30 -subj /CN=e2e-ca
ec ca2.key; openssl req -x509 -new -key ca2.key -out ca2.crt -days 30 -subj /CN=other-ca
printf 'subjectAltName=DNS:localhost\n' > san.ext
printf 'subjectAltName=DNS:wrong.example\n' > wrong.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
for n in server wrong client expired; do ec $n.key; done
openssl req -new -key server.key -out server.csr -subj /CN=localhost
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile san.ext -out server.crt 2>/dev/null
openssl req -new -key wrong.key -out wrong.csr -subj /CN=wrong.example
openssl x509 -req -in wrong.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile wrong.ext -out wrong.crt 2>/dev/null
openssl req -new -key client.key -out client.csr -subj /CN=dev-1
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out client.crt 2>/dev/null
openssl req -new -key expired.key -out expired.csr -subj /CN=localhost
touch index.txt; echo 1000 > serial
printf '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n' > ca.cnf
openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr -out expired.crt \
  -startdate 20200101000000Z -enddate 20200201000000Z -extfile san.ext 2>/dev/null
"""


@pytest.fixture(scope="module")
def tlsenv():
    """A PKI and one mosquitto with a plain listener and four TLS listeners."""
    d = tempfile.mkdtemp(prefix="ea-uplink-e2e-")
    subprocess.run(["sh", "-c", PKI], cwd=d, check=True)
    ports = {k: free_port() for k in ("plain", "mtls", "expired", "wrong")}
    p = lambda f: os.path.join(d, f)
    conf = (f"user root\npersistence false\nallow_anonymous true\n"
            f"listener {ports['plain']} 127.0.0.1\n"
            f"listener {ports['mtls']} 127.0.0.1\ncafile {p('ca.crt')}\ncertfile {p('server.crt')}\n"
            f"keyfile {p('server.key')}\nrequire_certificate true\n"
            f"listener {ports['expired']} 127.0.0.1\ncafile {p('ca.crt')}\ncertfile {p('expired.crt')}\n"
            f"keyfile {p('expired.key')}\n"
            f"listener {ports['wrong']} 127.0.0.1\ncafile {p('ca.crt')}\ncertfile {p('wrong.crt')}\n"
            f"keyfile {p('wrong.key')}\n")
    with open(p("mosquitto.conf"), "w") as f:
        f.write(conf)
    log = open(p("mosquitto.log"), "ab")
    broker = subprocess.Popen(["mosquitto", "-c", p("mosquitto.conf")], stdout=log, stderr=log)
    wait_for(lambda: all(listening(x) for x in ports.values()), 10, "mosquitto listeners")
    yield {"dir": d, "ports": ports, "p": p}
    broker.terminate()
    broker.wait(timeout=10)
    shutil.rmtree(d, ignore_errors=True)


class Sub:
    """mosquitto_sub on the plain listener, collecting (topic, payload) lines."""

    def __init__(self, port, topic, count=None):
        cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-v", "-t", topic]
        if count:
            cmd += ["-C", str(count)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines, self.lock = [], threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.3)

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.decode().rstrip("\n"))

    def payloads(self):
        with self.lock:
            return [l.split(" ", 1)[1] if " " in l else "" for l in self.lines]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Agent:
    def __init__(self, workdir, args):
        self.port = free_port()
        self.logpath = os.path.join(workdir, "agent.log")
        cmd = [bin_path("edgeagent"), "--allow-root", "--spool", os.path.join(workdir, "spool"),
               "--port", f"127.0.0.1:{self.port}", "--set", "uplink.backoff_min_ms=200",
               "--set", "uplink.backoff_max_ms=1000"] + args
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        wait_for(lambda: self.ready() or self.proc.poll() is not None, 10, "agent /ready")
        assert self.proc.poll() is None, self.logtext()

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def health(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
            return json.loads(r.read())

    def post(self, records):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/ingest",
                                     data=json.dumps(records).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status

    def logtext(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="ea-uplink-agent-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tls_args(env, port_key, topic, ca="ca.crt", client=True):
    p = env["p"]
    args = ["--uplink", f"mqtts://localhost:{env['ports'][port_key]}/{topic}",
            "--set", f"uplink.ca_file={p(ca)}", "--set", f"uplink.client_id=e2e-{port_key}-{topic.replace('/', '-')}"]
    if client:
        args += ["--set", f"uplink.cert_file={p('client.crt')}", "--set", f"uplink.key_file={p('client.key')}"]
    return args


def test_mqtts_client_cert_delivers_and_lwt(tlsenv, work):
    plain = tlsenv["ports"]["plain"]
    data = Sub(plain, "e2e/tls/data")
    status = Sub(plain, "e2e/tls/data/status")
    agent = Agent(work, tls_args(tlsenv, "mtls", "e2e/tls/data"))
    try:
        n = 200
        for start in range(0, n, 50):
            assert agent.post([{"device": "d1", "i": i, "temp": 20.5} for i in range(start, start + 50)]) == 200
        wait_for(lambda: len([x for x in data.payloads() if x.startswith("{")]) >= n, 20,
                 f"{n} records over mqtts")
        got = sorted(json.loads(x)["fields"]["i"] for x in data.payloads() if x.startswith("{"))
        assert sorted(set(got)) == list(range(n))
        wait_for(lambda: "online" in status.payloads(), 10, "retained online")
        assert agent.health()["uplink"]["connected"] in (True, 1)
        agent.kill(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
        wait_for(lambda: status.payloads()[-1:] == ["offline"], 10, "LWT offline")
        late = Sub(plain, "e2e/tls/data/status", count=1)  # retained: a new subscriber sees it
        wait_for(lambda: late.payloads() == ["offline"], 10, "retained offline for a late subscriber")
        late.stop()
    finally:
        agent.kill()
        data.stop()
        status.stop()


@pytest.mark.parametrize("port_key,ca,reason", [
    ("expired", "ca.crt", "TLS: certificate verify failed: expired"),
    ("wrong", "ca.crt", "TLS: certificate verify failed: hostname mismatch"),
    ("mtls", "ca2.crt", "TLS: certificate verify failed: unknown CA"),
])
def test_tls_refusals_are_clear(tlsenv, work, port_key, ca, reason):
    data = Sub(tlsenv["ports"]["plain"], f"e2e/bad/{port_key}")
    agent = Agent(work, tls_args(tlsenv, port_key, f"e2e/bad/{port_key}", ca=ca))
    try:
        assert agent.post([{"device": "d1", "temp": 1.0}]) == 200
        wait_for(lambda: reason in agent.logtext(), 10, f"log line '{reason}'")
        line = next(l for l in agent.logtext().splitlines() if reason in l)
        assert f"mqtts://localhost:{tlsenv['ports'][port_key]}" in line
        h = agent.health()["uplink"]
        assert h["connected"] in (False, 0)
        assert reason in json.dumps(h)
        time.sleep(0.5)
        assert data.payloads() == []  # nothing left the agent
    finally:
        agent.kill()
        data.stop()


SERVER = r"""
import gzip, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, log = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock(); state = {"n": 0}
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.headers.get("Content-Encoding") == "gzip" and self.headers.get("Authorization") == "Bearer tok"
        with lock:
            state["n"] += 1
            fail = state["n"] <= 2
        if ok and not fail:
            recs = json.loads(gzip.decompress(body))
            with lock, open(log, "a") as f:
                for r in recs: f.write(json.dumps(r) + "\n")
        code = 200 if ok and not fail else (500 if ok else 400)
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
srv = ThreadingHTTPServer(("127.0.0.1", port), H)
if len(sys.argv) > 3:  # https with a required client certificate: cert key ca
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    ctx.load_verify_locations(sys.argv[5])
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""


def run_http_uplink(work, scheme, server_extra=(), agent_extra=()):
    port = free_port()
    log = os.path.join(work, "received.jsonl")
    srv = subprocess.Popen([sys.executable, "-c", SERVER, str(port), log, *server_extra])
    try:
        wait_for(lambda: listening(port), 10, "http server")
        host = "localhost" if scheme == "https" else "127.0.0.1"
        agent = Agent(work, ["--uplink", f"{scheme}://{host}:{port}/ingest", "--set", "uplink.bearer_token=tok",
                             "--set", "uplink.batch_max=100", *agent_extra])
        try:
            n = 500
            for start in range(0, n, 100):
                assert agent.post([{"device": "d2", "i": i, "v": 1.5} for i in range(start, start + 100)]) == 200

            def received():
                if not os.path.exists(log):
                    return 0
                with open(log) as f:
                    return len(f.readlines())
            wait_for(lambda: received() >= n, 30, f"{n} records over {scheme}")
            with open(log) as f:
                got = sorted({json.loads(l)["fields"]["i"] for l in f})
            assert got == list(range(n))
            assert "HTTP 500" in agent.logtext()  # the first two POSTs failed and were retried
        finally:
            agent.kill()
    finally:
        srv.kill()
        srv.wait()


def test_http_uplink_gzip_batches_with_retries(work):
    run_http_uplink(work, "http")


def test_https_uplink_with_client_certificate(tlsenv, work):
    p = tlsenv["p"]
    run_http_uplink(work, "https", server_extra=(p("server.crt"), p("server.key"), p("ca.crt")),
                    agent_extra=("--set", f"uplink.ca_file={p('ca.crt')}", "--set", f"uplink.cert_file={p('client.crt')}",
                                 "--set", f"uplink.key_file={p('client.key')}"))
