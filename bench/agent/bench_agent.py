"""edgeagent benchmarks, side by side in one run on this machine (bench/agent/, run by hand or from
bench/run-all.sh): image size (the agent packed by `edgeslim pack --ca-certs` into a scratch image,
compressed and uncompressed layer bytes, amd64 and, when an arm64 build exists, arm64 from one
multi-platform index), start-to-ready, RSS/PSS idle and under a steady load with the uplink
connected, durable ingest records/s per fsync policy next to mosquitto_pub -> mosquitto ->
mosquitto_sub as a ceiling, memory while a 1 GB backlog sits in the spool, and collectd (Debian,
network plugin) as a footprint peer when installed (memory, and collectd-core's installed size).

Usage: bench_agent.py BIN_DIR [--quick] [--backlog-gb N] [--load-rate R] [--arm64-bin PATH]
  --quick: 10 s memory sampling instead of 60 s, 3 s load runs instead of 10 s.
  --load-rate: records/s of the steady load while memory is sampled (default 10000).
  --arm64-bin: the arm64 edgeagent (default: build-arm64/bin/edgeagent of this checkout).
edgeslim is taken from BIN_DIR when it is there, else from $EDGESLIM.
Prints a Markdown table; targets from shared/docs/TARGETS.md are in the last column.
"""
import gzip
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def mem_kb(pid):
    """(RSS, PSS) in kB from /proc/PID/smaps_rollup."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def sample_mem(pid, seconds, every=1.0):
    rs, ps = [], []
    end = time.time() + seconds
    while time.time() < end:
        r, p = mem_kb(pid)
        rs.append(r)
        ps.append(p)
        time.sleep(every)
    return statistics.median(rs), statistics.median(ps), max(rs)


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read()


class Broker:
    def __init__(self, work):
        self.port = free_port()
        conf = os.path.join(work, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
        self.p = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self):
        self.p.terminate()
        self.p.wait()


def start_agent(binary, work, port, extra=(), wait=True):
    spool = os.path.join(work, "spool")
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "--allow-root", "--spool", spool, "--port", f"127.0.0.1:{port}", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait:
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
                s.sendall(b"GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    s.close()
                    break
                s.close()
            except OSError:
                pass
            if p.poll() is not None:
                raise RuntimeError("agent exited")
            time.sleep(0.001)
    return p, (time.perf_counter() - t0) * 1000


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)


def loadgen(port, secs, conns=4, batch=2000):
    out = subprocess.run([sys.executable, os.path.join(HERE, "loadgen.py"), str(port), str(secs), str(conns),
                          str(batch)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def uplink_connected(port):
    return json.loads(get(port, "/health")[1])["uplink"]["connected"] is True


def wait_connected(port, secs=10):
    end = time.time() + secs
    while time.time() < end:
        if uplink_connected(port):
            return True
        time.sleep(0.05)
    return False


def memory_under_load(binary, work, up, mem_secs, rate, conns=2, batch=100):
    """RSS/PSS sampled every 1 s for mem_secs while loadgen.py sends `rate` records/s (steady) and
    the agent delivers them to mosquitto. Returns (rss_median, pss_median, rss_max, loadgen result,
    connected at every sample, records pending when the load stopped)."""
    shutil.rmtree(os.path.join(work, "spool"), ignore_errors=True)
    port = free_port()
    p, _ = start_agent(binary, work, port, up)
    if not wait_connected(port):
        stop(p)
        raise RuntimeError("uplink not connected before the load")
    # load runs 1 s before and after the sampling window
    lg = subprocess.Popen([sys.executable, os.path.join(HERE, "loadgen.py"), str(port), str(mem_secs + 2),
                           str(conns), str(batch), str(rate)], stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    rs, ps, always_up = [], [], True
    end = time.time() + mem_secs
    while time.time() < end:
        r, q = mem_kb(p.pid)
        rs.append(r)
        ps.append(q)
        always_up = always_up and uplink_connected(port)
        time.sleep(1.0)
    out, _ = lg.communicate(timeout=120)
    pending = json.loads(get(port, "/health")[1])["spool"]["pending"]
    stop(p)
    return statistics.median(rs), statistics.median(ps), max(rs), json.loads(out), always_up, pending


# ------------------------------------------------------------------ image size

ELF_MACHINES = {62: ("amd64", ["x86_64-linux-gnu-strip", "llvm-strip"]),
                183: ("arm64", ["aarch64-linux-gnu-strip", "llvm-strip"])}


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def stripped_copy(binary, outdir):
    """A copy of binary without symbols and debug info (what a release ships), or None when no strip
    tool for its architecture is installed."""
    arch, tools = ELF_MACHINES.get(elf_machine(binary), (None, []))
    if platform.machine() in ("x86_64", "AMD64") and arch == "amd64":
        tools = ["strip"] + tools
    tool = next((t for t in tools if shutil.which(t)), None)
    if not tool:
        return None
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, "edgeagent")
    subprocess.run([tool, "--strip-all", "-o", out, binary], check=True)
    return out


def archive_layers(path):
    """{platform: (compressed blob bytes, uncompressed layer bytes)} read from an oci-archive:
    index.json -> manifest (or index -> manifests) -> the layer blob, which is gunzipped and counted."""
    res = {}
    with tarfile.open(path) as t:
        def blob(digest):
            return t.extractfile("blobs/sha256/" + digest.split(":", 1)[1]).read()

        def manifest(desc):
            m = json.loads(blob(desc["digest"]))
            if "manifests" in m:  # an index
                for d in m["manifests"]:
                    manifest(d)
                return
            cfg = json.loads(blob(m["config"]["digest"]))
            plat = cfg.get("os", "?") + "/" + cfg.get("architecture", "?")
            comp = unc = 0
            for layer in m["layers"]:
                data = blob(layer["digest"])
                comp += len(data)
                unc += len(gzip.decompress(data)) if "gzip" in layer["mediaType"] else len(data)
            res[plat] = (comp, unc)

        for d in json.loads(t.extractfile("index.json").read())["manifests"]:
            manifest(d)
    return res


def find_edgeslim(bin_dir):
    for cand in (os.path.join(bin_dir, "edgeslim"), os.environ.get("EDGESLIM", "")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def pack(edgeslim, binaries, out):
    subprocess.run([edgeslim, "pack", *binaries, "--ca-certs", "-o", f"oci-archive:{out}"], check=True,
                   stdout=subprocess.DEVNULL)
    return archive_layers(out)


def image_rows(binary, bin_dir, arm64_bin):
    """Rows for the packed agent image: as built (RelWithDebInfo carries debug info) and stripped,
    amd64 (or whatever BIN_DIR holds) and arm64 from one multi-platform index."""
    edgeslim = find_edgeslim(bin_dir)
    target = "<= 1 MB compressed (1000000 B)"
    if not edgeslim:
        return [("agent image", "not measured: no edgeslim in BIN_DIR and $EDGESLIM unset", target)]
    rows = []
    work = tempfile.mkdtemp()
    try:
        def fmt(c_u):
            return f"{c_u[0]} / {c_u[1]}"

        built = pack(edgeslim, [binary], os.path.join(work, "built.tar"))
        for plat, cu in built.items():
            rows.append((f"agent image, {plat}, edgeagent as built ({os.path.getsize(binary)} B) + CA bundle: "
                         "layer bytes compressed / uncompressed", fmt(cu), target))
        bins = []
        s = stripped_copy(binary, os.path.join(work, "host"))
        if s:
            bins.append(s)
        if arm64_bin and os.path.exists(arm64_bin) and elf_machine(arm64_bin) != elf_machine(binary):
            s64 = stripped_copy(arm64_bin, os.path.join(work, "arm64"))
            if s64:
                bins.append(s64)
        if bins:
            stripped = pack(edgeslim, bins, os.path.join(work, "stripped.tar"))
            what = "one multi-platform index" if len(bins) > 1 else "one image"
            for plat, cu in sorted(stripped.items()):
                src = [b for b in bins if ELF_MACHINES.get(elf_machine(b), ("",))[0] in plat]
                size = f" ({os.path.getsize(src[0])} B)" if src else ""
                rows.append((f"agent image, {plat}, edgeagent stripped{size} + CA bundle ({what}): "
                             "layer bytes compressed / uncompressed", fmt(cu), target))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def collectd_installed_size():
    """collectd-core's Installed-Size (dpkg, KiB) in bytes, or None when it is not installed."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Installed-Size}", "collectd-core"],
                             capture_output=True, text=True)
    except OSError:
        return None
    return int(out.stdout) * 1024 if out.returncode == 0 and out.stdout.strip().isdigit() else None


def mosquitto_ceiling(n=100000):
    """Messages/s from mosquitto_pub (QoS 1, from a file) to a subscriber through mosquitto."""
    work = tempfile.mkdtemp()
    b = Broker(work)
    path = os.path.join(work, "lines")
    with open(path, "w") as f:
        for i in range(n):
            f.write('{"measurement":"env","tags":{"device":"d%d"},"fields":{"temp":%d}}\n' % (i % 10, i))
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(b.port), "-t", "bench", "-q", "1", "-C", str(n)],
                           stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    # mosquitto_pub -l exits at end of input before its queue is sent (TARGETS.md), so its stdin
    # stays open until the subscriber has everything
    t0 = time.perf_counter()
    pub = subprocess.Popen(["mosquitto_pub", "-p", str(b.port), "-t", "bench", "-q", "1", "-l"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(path, "rb") as f:
        pub.stdin.write(f.read())
    pub.stdin.flush()
    try:
        sub.wait(timeout=120)
        dt = time.perf_counter() - t0
        got = n
    except subprocess.TimeoutExpired:
        sub.kill()
        dt, got = 120, None
    pub.stdin.close()
    pub.wait()
    b.stop()
    shutil.rmtree(work, ignore_errors=True)
    return (got / dt) if got else None


def backlog(binary, gb, port):
    """Fills a spool to `gb` GB without an uplink, then restarts the agent on it; RSS all along."""
    work = tempfile.mkdtemp(dir="/var/tmp")
    p, _ = start_agent(binary, work, port, ["--fsync", "none", "--set", f"spool.max_bytes={gb + 1}GiB",
                                            "--set", "spool.segment_bytes=64MiB"])
    body = json.dumps([{"id": i, "pad": "x" * 900} for i in range(500)]).encode()
    target = gb * (1 << 30)
    rss_fill = []
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while True:
        c.request("POST", "/v1/ingest", body)
        r = c.getresponse()
        r.read()
        h = json.loads(get(port, "/health")[1])
        if len(rss_fill) % 50 == 0:
            rss_fill.append(mem_kb(p.pid)[0])
        else:
            rss_fill.append(rss_fill[-1])
        if h["spool"]["bytes"] >= target:
            break
    c.close()
    stop(p)
    p, ready_ms = start_agent(binary, work, port)
    rss_after, pss_after, _ = sample_mem(p.pid, 5)
    stop(p)
    shutil.rmtree(work, ignore_errors=True)
    return max(rss_fill), rss_after, pss_after, ready_ms


def collectd_footprint(seconds):
    if not shutil.which("collectd"):
        return None
    work = tempfile.mkdtemp()
    conf = os.path.join(work, "collectd.conf")
    with open(conf, "w") as f:
        f.write(f'BaseDir "{work}"\nPIDFile "{work}/collectd.pid"\nInterval 10\n'
                'LoadPlugin cpu\nLoadPlugin memory\nLoadPlugin load\nLoadPlugin interface\nLoadPlugin df\n'
                'LoadPlugin network\n<Plugin network>\n  Server "127.0.0.1" "25826"\n</Plugin>\n')
    p = subprocess.Popen(["collectd", "-f", "-C", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    try:
        return sample_mem(p.pid, seconds)
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(work, ignore_errors=True)


def opt(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else "build/bin"
    binary = os.path.join(bin_dir, "edgeagent")
    quick = "--quick" in sys.argv
    gb = float(opt("--backlog-gb", 1.0))
    rate = float(opt("--load-rate", 10000))
    arm64_bin = opt("--arm64-bin", os.path.join(REPO, "build-arm64", "bin", "edgeagent"))
    mem_secs, load_secs = (10, 3) if quick else (60, 10)
    rows = image_rows(binary, bin_dir, arm64_bin)
    cd_size = collectd_installed_size()
    if cd_size:
        rows.append(("peer: collectd-core installed size on disk (dpkg Installed-Size), bytes", str(cd_size),
                     "-"))
    else:  # nothing runnable here: the anchors of TARGETS.md, as text
        rows.append(("peer anchors (TARGETS.md, not measured here)", "-",
                     "distroless static ~2 MiB; Chainguard static layer 0.63-0.83 MB; "
                     "Greengrass lite .deb 0.83-1.10 MB"))
    work = tempfile.mkdtemp()
    broker = Broker(work)
    up = ["--uplink", f"mqtt://127.0.0.1:{broker.port}/bench"]

    times = []
    for i in range(20):
        w = tempfile.mkdtemp()
        p, ms = start_agent(binary, w, free_port(), up)
        times.append(ms)
        stop(p)
        shutil.rmtree(w, ignore_errors=True)
    rows.append(("start to ready (median of 20, ms)", f"{statistics.median(times):.1f}", "<= 50"))

    port = free_port()
    p, _ = start_agent(binary, work, port, up)
    if not wait_connected(port):
        raise RuntimeError("uplink not connected")
    time.sleep(1)
    rss, pss, _ = sample_mem(p.pid, mem_secs)
    rows.append((f"idle, uplink connected: RSS / PSS (median, {mem_secs} s), kB", f"{rss:.0f} / {pss:.0f}",
                 "RSS <= 4096, PSS <= 2048"))
    stop(p)

    rss, pss, rss_max, lg, always_up, pending = memory_under_load(binary, work, up, mem_secs, rate)
    rows.append((f"under load ({rate:.0f} records/s steady, uplink connected): RSS / PSS (median, 1 s samples, "
                 f"{mem_secs} s), kB", f"{rss:.0f} / {pss:.0f}", "RSS <= 4096, PSS <= 2048"))
    rows.append((f"  same run: load achieved, records/s; max RSS kB; uplink connected at every sample; "
                 f"pending when the load stopped", f"{lg['rate']}; {rss_max}; {'yes' if always_up else 'NO'}; "
                 f"{pending}", "-"))

    for pol in ("batch", "always", "none"):
        shutil.rmtree(os.path.join(work, "spool"), ignore_errors=True)
        port = free_port()
        p, _ = start_agent(binary, work, port, up + ["--fsync", pol])
        t0 = time.time()
        r = loadgen(port, load_secs)
        rss_load = mem_kb(p.pid)
        while time.time() - t0 < 120 and json.loads(get(port, "/health")[1])["spool"]["pending"] > 0:
            time.sleep(0.05)
        delivered = json.loads(get(port, "/health")[1])["records"]["delivered"]
        rows.append((f"ingest, fsync={pol}: records/s acknowledged to senders (RSS kB right after)",
                     f"{r['rate']} ({rss_load[0]})", ">= 50000 (batch)"))
        rows.append((f"  same run: records/s delivered to mosquitto and PUBACKed (QoS 1)",
                     f"{delivered / (time.time() - t0):.0f}", "-"))
        stop(p)
    ceiling = mosquitto_ceiling()
    rows.append(("ceiling: mosquitto_pub -l -> mosquitto -> mosquitto_sub, messages/s (QoS 1)",
                 f"{ceiling:.0f}" if ceiling else "did not finish (mosquitto_pub -l loses its queue)", "-"))
    broker.stop()
    shutil.rmtree(work, ignore_errors=True)

    if gb > 0:
        fill_max, rss_after, pss_after, ready_ms = backlog(binary, gb, free_port())
        rows.append((f"{gb:g} GB backlog: max RSS while filling / RSS, PSS after restart on it (kB)",
                     f"{fill_max} / {rss_after:.0f}, {pss_after:.0f}", "flat"))
        rows.append((f"start to ready with a {gb:g} GB backlog (ms)", f"{ready_ms:.1f}", "<= 50"))
    cd = collectd_footprint(mem_secs)
    rows.append(("collectd 5 plugins + network: RSS / PSS (median), kB",
                 f"{cd[0]:.0f} / {cd[1]:.0f}" if cd else "not installed (apt-get install collectd-core)",
                 "peer: 3.2 MB / 1.7 MB"))

    print("| measure | edgeagent | target |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
