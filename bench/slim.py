"""edgeslim slim per fixture: reduction and wall time (bench/run-all.sh runs it after bench.py).

For each distro-based fixture (nginx, python, flask-full) and the small static one, runs
`edgeslim slim` with the probes a user would give, loads original and slim image into a private
podman storage, and reports the size podman reports (the issue's measure), the reduction, the
file bytes from slim's own report and the wall time (GNU time) with peak RSS.

Usage: slim.py BIN_DIR  -> prints a Markdown table.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import fixtures  # noqa: E402

PROBES = {
    "nginx": ["--probe", "http://127.0.0.1:80/", "--probe", "http://127.0.0.1:80/missing#404"],
    "python": ["--probe", "http://127.0.0.1:8000/", "--probe", "http://127.0.0.1:8000/greet/bob"],
    "flask-full": ["--probe", "http://127.0.0.1:8000/", "--probe", "http://127.0.0.1:8000/greet/bob"],
    "static": [],
}


def podman_size(store, archive):
    base = ["podman", "--root", os.path.join(store, "root"), "--runroot", os.path.join(store, "run"),
            "--storage-driver", "vfs"]
    out = subprocess.run(base + ["load", "-i", archive], capture_output=True, text=True, check=True).stdout
    ref = [l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Loaded image")][0]
    size = int(subprocess.run(base + ["image", "inspect", "--format", "{{.Size}}", ref],
                              capture_output=True, text=True, check=True).stdout)
    subprocess.run(base + ["rmi", "-f", ref], capture_output=True)
    return size


def main():
    es = os.path.join(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/bin"), "edgeslim")
    work = tempfile.mkdtemp(prefix="esb", dir="/tmp")  # podman: runroot must be short
    rows = []
    try:
        for name, probes in PROBES.items():
            src = fixtures.image(name)
            dst = os.path.join(work, f"{name}-slim.tar")
            report = os.path.join(work, f"{name}.json")
            timing = os.path.join(work, f"{name}.time")
            subprocess.run(["sync"])
            p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", timing, es, "slim", src, "-o",
                                f"docker-archive:{dst}", "--report", report, *probes],
                               capture_output=True, text=True)
            if p.returncode != 0:
                rows.append(f"| {name} | slim failed (exit {p.returncode}): {p.stderr.strip()[:120]} | | | | |")
                continue
            secs, kb = open(timing).read().split()[-2:]
            r = json.load(open(report))
            before, after = podman_size(work, src), podman_size(work, dst)
            red = 100.0 * (1 - after / before)
            rows.append(f"| {name} | {before / 1e6:.1f} MB | {after / 1e6:.2f} MB | {red:.1f} % | "
                        f"{r.get('reduction_percent', 0):.1f} % | {float(secs):.1f} s, {int(kb) // 1024} MB |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| image | podman size before | after | fewer bytes (podman) | fewer file bytes (slim report) | slim wall time, peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
