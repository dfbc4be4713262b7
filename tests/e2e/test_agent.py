"""End-to-end tests of edgeagent as a process: real sockets, a real mosquitto broker started on a
free port on 127.0.0.1, mosquitto_sub (persistent QoS 1 session) counting what reaches the topic.

Covers: records POSTed reach the topic with all their fields; line protocol over UDP and TCP;
malformed input answered 4xx while others are still served (bad JSON, oversized, chunked, wrong
token, slow client 408, connection cap 503); broker down then back: every accepted record
delivered; kill -9 rounds under load: no acknowledged record lost; spool full (refuse); torn and
corrupted spool tails; --check-config; root refusal; SIGHUP reload; SIGTERM drain; signed remote
config applied and bad signatures refused.
"""
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import bin_path


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
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


class Broker:
    """mosquitto on 127.0.0.1:port with on-disk persistence (sessions survive restarts)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.dir = os.path.join(workdir, "broker")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            # user root: started as root, mosquitto would otherwise switch to user mosquitto and
            # fail to save its persistence file in our private temp dir (sessions lost on restart)
            user = "user root\n" if os.geteuid() == 0 else ""
            f.write(f"{user}listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {self.dir}/\nautosave_interval 1\nmax_queued_messages 0\n"
                    f"max_inflight_messages 100\n")
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=self.log, stderr=self.log)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "mosquitto to listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None


class Subscriber:
    """mosquitto_sub with a persistent session (QoS 1): collects payloads across broker restarts."""

    def __init__(self, broker, topic):
        self.broker, self.topic = broker, topic
        self.msgs = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i",
             f"sub-{os.getpid()}-{random.randrange(1 << 30)}", "-t", topic],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.3)  # subscribed before anything is published

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.msgs.append(line.decode().strip())

    def records(self):
        with self.lock:
            return [json.loads(m) for m in self.msgs if m.startswith("{")]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Agent:
    def __init__(self, workdir, args=(), config=None, env=None):
        self.workdir = workdir
        self.port = free_port()
        self.spool = os.path.join(workdir, "spool")
        self.args = list(args)
        self.config = config
        self.env = env
        self.proc = None
        self.logpath = os.path.join(workdir, "agent.log")

    def start(self, wait_ready=True):
        cmd = [bin_path("edgeagent"), "--allow-root", "--spool", self.spool, "--port",
               f"127.0.0.1:{self.port}"] + self.args
        if self.config:
            cmd += ["--config", self.config]
        env = dict(os.environ)
        env.update(self.env or {})
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
        if wait_ready:
            wait_for(lambda: self.ready() or self.proc.poll() is not None, 10, "agent /ready")
            assert self.proc.poll() is None, self.logtext()

    def ready(self):
        try:
            return self.get("/ready")[0] == 200
        except OSError:
            return False

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def health(self):
        return json.loads(self.get("/health")[1])

    def metric(self, name):
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(f"edgeagent_{name} "):
                return int(line.split()[1])
        raise KeyError(name)

    def post(self, body, headers=None, timeout=10):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/ingest", data=data,
                                     headers=headers or {}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def logtext(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="ea-e2e-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def broker(work):
    b = Broker(work)
    b.start()
    yield b
    b.stop()


def uplink(broker, topic="edge/data"):
    return ["--uplink", f"mqtt://127.0.0.1:{broker.port}/{topic}"]


def by_id(records):
    out = {}
    for r in records:
        rid = r["fields"].get("id")
        out.setdefault(rid, []).append(r)
    return out


# ---------------------------------------------------------------------------- basics

def test_help_version_and_check_config(work):
    p = subprocess.run([bin_path("edgeagent"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--check-config" in p.stdout
    good = os.path.join(work, "good.yaml")
    with open(good, "w") as f:
        f.write("spool:\n  dir: /tmp/x\n  fsync: batch\nroutes:\n  - name: hot\n    filters:\n"
                "      - threshold: \"temp > 30\"\n")
    p = subprocess.run([bin_path("edgeagent"), "--check-config", good], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "ok" in p.stdout
    bad = os.path.join(work, "bad.yaml")
    with open(bad, "w") as f:
        f.write("spool:\n  dir: /tmp/x\nroutes:\n  - filters:\n      - treshold: \"temp > 30\"\n")
    p = subprocess.run([bin_path("edgeagent"), "--check-config", bad], capture_output=True, text=True)
    assert p.returncode == 2
    assert "line 5" in p.stderr and "unknown filter 'treshold'" in p.stderr
    p = subprocess.run([bin_path("edgeagent"), "--bogus"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown option" in p.stderr


def test_refuses_root_without_allow_root(work):
    if os.geteuid() != 0:
        pytest.skip("needs to run as root to test the refusal")
    p = subprocess.run([bin_path("edgeagent"), "--spool", os.path.join(work, "s"), "--port", "0"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 3
    assert "refusing to run as root" in p.stderr


def test_post_reaches_topic_with_all_fields(work, broker):
    sub = Subscriber(broker, "edge/data")
    agent = Agent(work, uplink(broker))
    agent.start()
    try:
        sent = []
        for i in range(50):
            rec = {"measurement": "env", "device": f"d{i % 3}", "id": i, "temp": 20 + i / 10,
                   "ok": i % 2 == 0, "note": {"nested": [i, "x"]}}
            sent.append(rec)
        st, body = agent.post(sent[0])
        assert st == 200 and body["accepted"] == 1
        st, body = agent.post(sent[1:])
        assert st == 200 and body["accepted"] == 49
        wait_for(lambda: len(sub.records()) >= 50, 15, "50 records on the topic")
        got = by_id(sub.records())
        for rec in sent:
            r = got[rec["id"]][0]
            assert r["measurement"] == "env"
            assert r["tags"]["device"] == rec["device"]
            assert r["fields"]["temp"] == pytest.approx(rec["temp"])
            assert r["fields"]["ok"] == rec["ok"]
            assert r["fields"]["note"] == rec["note"]
            assert r["source"] == "http" and r["seq"] > 0 and r["received_ms"] > 0
        h = agent.health()
        assert h["uplink"]["connected"] is True
        wait_for(lambda: agent.metric("records_delivered_total") >= 50, 10, "acks")
        assert agent.metric("records_accepted_total") == 50
        assert agent.metric("uplink_connected") == 1
    finally:
        assert agent.stop() == 0
        sub.stop()


def test_lineproto_udp_and_tcp(work, broker):
    sub = Subscriber(broker, "edge/data")
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port()
    agent = Agent(work, uplink(broker) + ["--set", f"lineproto.udp=127.0.0.1:{udp}",
                                          "--set", f"lineproto.tcp=127.0.0.1:{tcp}"])
    agent.start()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"cpu,host=a id=1i,usage=0.5\ncpu,host=b id=2i,usage=0.7 1700000000000000000\n",
                 ("127.0.0.1", udp))
        s.sendto(b"this is not line protocol\n", ("127.0.0.1", udp))
        t = socket.create_connection(("127.0.0.1", tcp))
        t.sendall(b"mem,host=a id=3i,free=10i\nmem id=4i,s=\"quoted \\\"x\\\"\"\nbad line\n")
        t.close()
        wait_for(lambda: len(sub.records()) >= 4, 15, "4 line-protocol records")
        got = by_id(sub.records())
        assert got[1][0]["source"] == "udp" and got[1][0]["tags"]["host"] == "a"
        assert got[2][0]["ts"] == 1700000000000000000
        assert got[3][0]["source"] == "tcp" and got[3][0]["fields"]["free"] == 10
        assert got[4][0]["fields"]["s"] == 'quoted "x"'
        wait_for(lambda: agent.metric("records_rejected_total") == 2, 5, "2 rejected lines")
    finally:
        agent.stop()
        sub.stop()


def raw_request(port, data, read=True, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"Connection: close" not in out:
                    head, _, rest = out.partition(b"\r\n\r\n")
                    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0]
                                 .split(b":")[1])
                    if len(rest) >= length:
                        break
        except socket.timeout:
            pass
    s.close()
    return out


def test_malformed_inputs_get_4xx_and_others_are_served(work, broker):
    sub = Subscriber(broker, "edge/data")
    agent = Agent(work, uplink(broker) + ["--set", "http.timeout_ms=1000", "--set", "http.max_connections=8",
                                          "--set", "http.max_body=64KiB", "--set", "http.token=s3cret"])
    agent.start()
    auth = {"Authorization": "Bearer s3cret"}
    try:
        st, body = agent.post(b'{"temp": ', auth)
        assert st == 400 and "invalid JSON" in body["error"]
        st, body = agent.post(b'[{"temp": 1}, 3]', auth)
        assert st == 400 and "record 1" in body["error"]
        st, body = agent.post(b'{"device": "only-a-tag"}', auth)
        assert st == 400 and "no fields" in body["error"]
        st, body = agent.post({"temp": 1}, {"Authorization": "Bearer wrong"})
        assert st == 401
        st, body = agent.post({"temp": 1})
        assert st == 401
        big = json.dumps({"x": "a" * 70000}).encode()
        out = raw_request(agent.port, b"POST /v1/ingest HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(big))
        assert out.startswith(b"HTTP/1.1 413")
        out = raw_request(agent.port, b"POST /v1/ingest HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 411")
        out = raw_request(agent.port, b"GET /nothing HTTP/1.1\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 404")
        out = raw_request(agent.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400")
        # slow client: half a head, then silence -> 408 and close after the deadline
        slow = socket.create_connection(("127.0.0.1", agent.port))
        slow.sendall(b"POST /v1/ingest HTTP/1.1\r\nContent-Le")
        slow.settimeout(5)
        t0 = time.time()
        resp = slow.recv(4096)
        assert resp.startswith(b"HTTP/1.1 408"), resp
        assert slow.recv(4096) == b""
        slow.close()
        assert time.time() - t0 < 4.5
        # connection cap: 8 idle connections fill it, the 9th gets 503
        idle = [socket.create_connection(("127.0.0.1", agent.port)) for _ in range(8)]
        time.sleep(0.2)
        ninth = raw_request(agent.port, b"GET /health HTTP/1.1\r\n\r\n")
        assert ninth.startswith(b"HTTP/1.1 503")
        for s in idle:
            s.close()
        time.sleep(0.3)
        # everyone else still served, keep-alive works
        st, body = agent.post([{"id": 1, "temp": 1}, {"id": 2, "temp": 2}], auth)
        assert st == 200 and body["accepted"] == 2
        ka = raw_request(agent.port, b"GET /ready HTTP/1.1\r\n\r\nGET /ready HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert ka.count(b"HTTP/1.1 200") == 2
        wait_for(lambda: len(sub.records()) >= 2, 10, "valid records delivered")
        assert agent.metric("http_timeouts_total") >= 1
        assert agent.metric("http_connections_refused_total") >= 1
        assert agent.metric("records_rejected_total") >= 5
        assert agent.proc.poll() is None
    finally:
        agent.stop()
        sub.stop()


# ---------------------------------------------------------------------------- faults

def test_broker_down_then_back_every_accepted_record_delivered(work, broker):
    sub = Subscriber(broker, "edge/data")
    agent = Agent(work, uplink(broker) + ["--set", "uplink.backoff_max_ms=2000"])
    agent.start()
    try:
        accepted = []
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                batch = [{"id": i + k, "v": k} for k in range(20)]
                st, body = agent.post(batch)
                if st == 200:
                    accepted.extend(r["id"] for r in batch)
                i += 20
                time.sleep(0.02)
        t = threading.Thread(target=load)
        t.start()
        time.sleep(1)
        broker.stop()
        wait_for(lambda: agent.health()["uplink"]["connected"] is False, 10, "agent to see the broker gone")
        time.sleep(10)  # broker down 10 s under load: the spool keeps accepting
        broker.start()
        time.sleep(1)
        stop.set()
        t.join()
        assert len(accepted) > 200
        wait_for(lambda: set(accepted) <= set(by_id(sub.records())), 60, "every accepted record delivered")
        wait_for(lambda: agent.health()["spool"]["pending"] == 0, 20, "spool drained")
    finally:
        agent.stop()
        sub.stop()


def test_kill9_rounds_no_acknowledged_record_lost(work, broker):
    sub = Subscriber(broker, "edge/data")
    agent = Agent(work, uplink(broker))
    acked = []
    rng = random.Random(1234)
    for rnd in range(6):
        agent.start()
        stop = threading.Event()
        base = rnd * 1_000_000

        def load():
            i = 0
            while not stop.is_set():
                batch = [{"id": base + i + k, "round": rnd} for k in range(10)]
                try:
                    st, _ = agent.post(batch, timeout=3)
                except OSError:
                    return  # killed mid-request: not acknowledged
                if st == 200:
                    acked.extend(r["id"] for r in batch)
                i += 10
        threads = [threading.Thread(target=load) for _ in range(2)]
        for th in threads:
            th.start()
        time.sleep(0.3 + rng.random())
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait()
        stop.set()
        for th in threads:
            th.join()
        agent.proc = None
    agent.start()
    try:
        assert len(acked) > 100
        wait_for(lambda: set(acked) <= set(by_id(sub.records())), 60, "every acknowledged record delivered")
        got = by_id(sub.records())
        dups = sum(len(v) - 1 for v in got.values())
        print(f"kill -9 x6: {len(acked)} acknowledged, all delivered, {dups} duplicates")
    finally:
        agent.stop()
        sub.stop()


def test_spool_full_refuse_policy(work):
    agent = Agent(work, ["--set", "spool.max_bytes=64KiB", "--set", "spool.full_policy=refuse"])
    agent.start()  # no uplink: nothing drains
    try:
        codes = []
        for i in range(200):
            st, body = agent.post([{"id": i * 10 + k, "pad": "x" * 100} for k in range(10)])
            codes.append(st)
            if st == 503:
                assert body["error"] == "spool full"
        assert 200 in codes and 503 in codes
        assert codes.index(503) < len(codes)
        h = agent.health()
        assert h["spool"]["bytes"] <= 64 * 1024
        assert h["drops"]["spool_refused"] > 0
        assert agent.get("/ready")[0] == 200
        assert agent.metric("spool_refused_total") > 0
    finally:
        assert agent.stop() == 0


def test_spool_full_drop_oldest_policy(work):
    agent = Agent(work, ["--set", "spool.max_bytes=64KiB", "--set", "spool.full_policy=drop-oldest"])
    agent.start()
    try:
        for i in range(200):
            st, _ = agent.post([{"id": i * 10 + k, "pad": "x" * 100} for k in range(10)])
            assert st == 200
        h = agent.health()
        assert h["spool"]["bytes"] <= 64 * 1024
        assert h["drops"]["spool_dropped_oldest"] > 0
    finally:
        agent.stop()


def test_torn_and_corrupt_spool_tail(work, broker):
    agent = Agent(work)  # no uplink: records stay spooled
    agent.start()
    for i in range(100):
        assert agent.post({"id": i, "v": i})[0] == 200
    assert agent.stop() == 0
    segs = sorted(f for f in os.listdir(agent.spool) if f.startswith("seg-"))
    last = os.path.join(agent.spool, segs[-1])
    size = os.path.getsize(last)
    with open(last, "r+b") as f:
        f.truncate(size - 7)  # torn tail: the last record is cut
        f.seek(size // 2)     # and a flipped byte in the middle
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    sub = Subscriber(broker, "edge/data")
    agent.args = uplink(broker)
    agent.start()
    try:
        wait_for(lambda: len(by_id(sub.records())) >= 98, 15, "the intact records")
        time.sleep(0.5)
        got = by_id(sub.records())
        assert 98 <= len(got) <= 99
        assert 99 not in got
        h = agent.health()
        assert h["drops"]["spool_corrupt"] == 2
        assert agent.post({"id": 1000, "v": 1})[0] == 200  # and it keeps working
        wait_for(lambda: 1000 in by_id(sub.records()), 10, "new record after recovery")
    finally:
        agent.stop()
        sub.stop()


# ---------------------------------------------------------------------------- config and control

def test_sighup_reload_swaps_routes_and_sigterm_drains(work, broker):
    sub = Subscriber(broker, "edge/data")
    cfg = os.path.join(work, "agent.yaml")
    with open(cfg, "w") as f:
        f.write("agent:\n  device_id: dev-1\nroutes:\n  - name: hot\n    filters:\n"
                "      - threshold: \"temp > 30\"\n")
    agent = Agent(work, uplink(broker), config=cfg)
    agent.start()
    try:
        assert agent.post([{"id": 1, "temp": 10}, {"id": 2, "temp": 40}])[1] == {"accepted": 2, "filtered": 1}
        with open(cfg, "w") as f:
            f.write("agent:\n  device_id: dev-2\nroutes:\n  - name: all\n    filters:\n      - enrich: {}\n")
        agent.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert agent.post([{"id": 3, "temp": 10}])[1]["filtered"] == 0
        with open(cfg, "w") as f:
            f.write("routes:\n  - filters:\n      - nosuchfilter: 1\n")
        agent.proc.send_signal(signal.SIGHUP)  # bad file: the running config stays
        time.sleep(0.5)
        assert agent.post([{"id": 4, "temp": 10}])[0] == 200
        assert "config not reloaded" in agent.logtext() and "line 3" in agent.logtext()
        wait_for(lambda: {2, 3, 4} <= set(by_id(sub.records())), 10, "records 2, 3 and 4")
        got = by_id(sub.records())
        assert 1 not in got
        assert got[3][0]["tags"]["device_id"] == "dev-2"
    finally:
        assert agent.stop(signal.SIGTERM) == 0
        sub.stop()
    assert "draining" in agent.logtext()


def make_key(work):
    key = os.path.join(work, "ctl.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return key, base64.b64encode(der[-32:]).decode()


def signed_doc(work, key, payload):
    path = os.path.join(work, "payload.json")
    with open(path, "wb") as f:
        f.write(payload)
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", path], check=True,
                         capture_output=True).stdout
    return json.dumps({"payload": base64.b64encode(payload).decode(),
                       "signature": base64.b64encode(sig).decode()})


def test_signed_remote_config_applied_bad_ones_refused(work, broker):
    key, pub = make_key(work)
    sub = Subscriber(broker, "edge/data")
    status = Subscriber(broker, "edge/data/status/config")
    agent = Agent(work, uplink(broker) + ["--set", "uplink.control_topic=edge/dev/config",
                                          "--set", f"control.public_key={pub}"])
    agent.start()
    try:
        wait_for(lambda: agent.health()["uplink"]["connected"], 10, "uplink")
        payload = json.dumps({"version": 3, "config": {"routes": [
            {"name": "hot", "filters": [{"threshold": "temp > 30"}]}]}}).encode()
        doc = signed_doc(work, key, payload)
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "edge/dev/config", "-q", "1", "-m", doc],
                       check=True)
        wait_for(lambda: agent.health()["config_version"] == 3, 10, "config version 3 applied")
        assert agent.post([{"id": 1, "temp": 10}, {"id": 2, "temp": 50}])[1]["filtered"] == 1
        # tampered payload, unsigned and replayed documents are refused and counted
        bad = json.loads(doc)
        bad["payload"] = base64.b64encode(payload.replace(b"30", b"99")).decode()
        for d in (json.dumps(bad), json.dumps({"payload": bad["payload"]}), doc):
            subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "edge/dev/config", "-q", "1", "-m", d],
                           check=True)
        wait_for(lambda: agent.metric("config_rejected_total") == 3, 10, "3 refused documents")
        assert agent.health()["config_version"] == 3
        wait_for(lambda: any('"applied"' in m for m in status.msgs), 10, "applied report")
        # the applied document survives a restart
        agent.stop()
        agent.start()
        assert agent.health()["config_version"] == 3
    finally:
        agent.stop()
        sub.stop()
        status.stop()


def test_no_remote_init_ignores_control(work, broker):
    key, pub = make_key(work)
    agent = Agent(work, uplink(broker) + ["--set", "uplink.control_topic=edge/dev/config",
                                          "--set", f"control.public_key={pub}", "--no-remote-init"])
    agent.start()
    try:
        wait_for(lambda: agent.health()["uplink"]["connected"], 10, "uplink")
        doc = signed_doc(work, key, json.dumps({"version": 1, "config": {"routes": []}}).encode())
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "edge/dev/config", "-q", "1", "-m", doc],
                       check=True)
        time.sleep(1)
        assert agent.health()["config_version"] == -1
    finally:
        agent.stop()


def test_mqtt_device_topics_input(work, broker):
    sub = Subscriber(broker, "edge/data")
    cfg = os.path.join(work, "agent.yaml")
    with open(cfg, "w") as f:
        f.write(f"mqtt_in:\n  url: mqtt://127.0.0.1:{broker.port}\n  topics: [\"devices/+/telemetry\"]\n")
    agent = Agent(work, uplink(broker) + ["--set", "agent.device_id=gw1"], config=cfg)
    agent.start()
    try:
        time.sleep(0.5)  # subscribed
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "devices/d7/telemetry", "-q", "1",
                        "-m", '[{"id": 1, "temp": 21.5}, {"id": 2, "temp": 22}]'], check=True)
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "devices/d7/telemetry", "-q", "1",
                        "-m", "not json"], check=True)
        wait_for(lambda: {1, 2} <= set(by_id(sub.records())), 10, "device records on the uplink topic")
        r = by_id(sub.records())[1][0]
        assert r["source"] == "mqtt" and r["tags"]["topic"] == "devices/d7/telemetry"
        wait_for(lambda: agent.metric("records_rejected_total") == 1, 5, "the bad message counted")
    finally:
        agent.stop()
        sub.stop()


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_hardening_seccomp_and_secure_memory(work, broker):
    agent = Agent(work, uplink(broker) + ["--secure-memory"])
    agent.start()
    try:
        st = proc_status(agent.proc.pid)
        assert st["Seccomp"].strip() == "2"            # filter mode, installed after init
        assert st["NoNewPrivs"].strip() == "1"
        assert int(st["VmLck"].split()[0]) > 0          # mlockall
        with open(f"/proc/{agent.proc.pid}/limits") as f:
            core = [line for line in f if line.startswith("Max core file size")][0]
        assert core.split()[4] == "0"
        # still fully working under the allow-list: ingest, fsync, delivery, health
        sub = Subscriber(broker, "edge/data")
        assert agent.post({"id": 1, "v": 1})[0] == 200
        wait_for(lambda: 1 in by_id(sub.records()), 10, "delivery under seccomp")
        sub.stop()
        assert agent.stop() == 0                       # clean exit under the filter too
    finally:
        agent.stop()
    agent = Agent(work, ["--no-seccomp"])
    agent.start()
    try:
        assert proc_status(agent.proc.pid)["Seccomp"].strip() == "0"
    finally:
        agent.stop()


def test_http_uplink_batches_reach_a_real_http_server(work):
    """The core's spool -> output path with agent-uplink's HTTP output: a real HTTP server here."""
    import gzip
    import http.server
    got = []

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            got.extend(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    agent = Agent(work, ["--uplink", f"http://127.0.0.1:{srv.server_address[1]}/ingest"])
    agent.start()
    try:
        for i in range(10):
            assert agent.post([{"id": i * 10 + k, "v": k} for k in range(10)])[0] == 200
        wait_for(lambda: len({r["fields"]["id"] for r in got}) == 100, 15, "100 records POSTed upstream")
        wait_for(lambda: agent.health()["spool"]["pending"] == 0, 10, "spool acknowledged")
    finally:
        agent.stop()
        srv.shutdown()
