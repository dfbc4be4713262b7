#!/usr/bin/env python3
"""edgeslim side-by-side benchmarks (called by bench/run-all.sh, i.e. `make bench`).

In one run, on the fixture images nginx, python and fat (built on demand, cached):
  unpack   edgeslim unpack  vs  umoci unpack  vs  the floor (zcat of every gzip layer | sha256sum)
  convert  edgeslim convert --compress gzip|zstd  vs  skopeo copy --dest-compress-format gzip|zstd
           (docker-archive with uncompressed layers -> OCI layout, both tools), and vs the zstd
           CLI compressing the same archive to /dev/null (`zstd -3 -T0`, the TARGETS.md anchor)
  inspect  edgeslim inspect --json on the gzip OCI layout (no peer here: dive is not packaged in Debian 12)
Wall time and peak RSS come from GNU time (`/usr/bin/time -f '%e %M'`); each measurement is
repeated BENCH_REPS times (default 1, to stay within ~10 minutes; use 3 for publishing) and the fastest run is kept. Inputs are read once before
measuring so every tool starts from a warm page cache, with `sync` before each run. Every unpack
run (edgeslim's and umoci's) writes into a freshly made ext4 file system (a sparse file on a loop
device, made and mounted outside the timing; BENCH_FRESH_FS=0 uses the scratch directory
instead). Why: on ext4, creating files in the minute after deleting a large tree is slow (the
inode allocator skips, and re-reads, every inode deleted in the last 60 s: ~7 s of kernel time
for the python image's 8.7k files after the previous run's tree was removed), so run N would pay
for run N-1's clean-up. Convert writes a handful of files, so it writes into the scratch
directory on the host file system (an fsync through a loop device costs twice).

Prints one table with ratios (edgeslim/floor, edgeslim/umoci, edgeslim/skopeo) and a memory
table (peak RSS against image bytes and file count), and writes the same Markdown to
BIN_DIR/../bench-results.md; with --update, replaces the results section of BENCHMARKS.md.
"""
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
import fixtures  # noqa: E402

IMAGES = os.environ.get("BENCH_IMAGES", "nginx python fat").split()
REPS = int(os.environ.get("BENCH_REPS", "1"))
FRESH_FS = os.environ.get("BENCH_FRESH_FS", "1") == "1"
FS_SIZE = os.environ.get("BENCH_FS_SIZE", "6G")


class Scratch:
    """The output place for one run: a fresh ext4 mounted on `path` (or, when that is not
    possible or BENCH_FRESH_FS=0, the plain directory, emptied after the run)."""

    fresh_ok = FRESH_FS and os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None

    def __init__(self, path, fresh):
        self.path = path
        self.fresh = fresh
        self.img = None

    def __enter__(self):
        if self.fresh and Scratch.fresh_ok:
            self.img = self.path + ".img"
            try:
                subprocess.run(["truncate", "-s", FS_SIZE, self.img], check=True)
                subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                                self.img], check=True, stdout=subprocess.DEVNULL)
                subprocess.run(["mount", "-o", "loop", self.img, self.path], check=True,
                               stderr=subprocess.DEVNULL)
            except subprocess.CalledProcessError:
                print("bench: no loop-mounted ext4 here; writing into the scratch directory", file=sys.stderr)
                Scratch.fresh_ok = False
                if os.path.exists(self.img):
                    os.unlink(self.img)
                self.img = None
        return self

    def __exit__(self, *exc):
        if self.img:
            subprocess.run(["umount", self.path], check=False)
            os.unlink(self.img)
        else:
            for name in os.listdir(self.path):
                path = os.path.join(self.path, name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        return False
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def measure(cmd, scratch, shell=False, fresh=False):
    """Runs cmd under GNU time REPS times; returns (seconds, peak_kb, rc) of the fastest run."""
    best = None
    for _ in range(REPS):
        with Scratch(scratch, fresh):
            subprocess.run(["sync"], check=False)
            tf = os.path.join(scratch, ".time")
            full = ["/usr/bin/time", "-o", tf, "-f", "%e %M"] + (["sh", "-c", cmd] if shell else cmd)
            p = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
            with open(tf) as f:
                last = f.read().strip().splitlines()[-1]
            secs, kb = last.split()[-2:]
            res = (float(secs), int(kb), p.returncode, p.stderr.decode(errors="replace").strip()[-200:])
        if res[2] != 0:
            return res
        if best is None or res[0] < best[0]:
            best = res
    return best


def warm(path):
    for dirpath, _, files in os.walk(path) if os.path.isdir(path) else [("", [], [path])]:
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(1 << 22):
                    pass


def oci_layers(layout):
    with open(os.path.join(layout, "index.json")) as f:
        mdig = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(layout, "blobs", *mdig.split(":"))) as f:
        manifest = json.load(f)
    return [(l["mediaType"], os.path.join(layout, "blobs", *l["digest"].split(":"))) for l in manifest["layers"]]


def image_stats(docker_tar, layout, scratch):
    """Uncompressed layer bytes, compressed bytes, and files in the final tree (via umoci)."""
    import tarfile
    with tarfile.open(docker_tar) as tf:
        raw = sum(m.size for m in tf.getmembers() if m.name.endswith(".tar") and m.isfile())
    comp = sum(os.path.getsize(p) for _, p in oci_layers(layout))
    bundle = os.path.join(scratch, "count")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", bundle], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = sum(len(d) + len(f) for _, d, f in os.walk(os.path.join(bundle, "rootfs")))
    shutil.rmtree(bundle)
    return raw, comp, files


def fmt_row(cells):
    return "| " + " | ".join(cells) + " |"


def ratio(a, b):
    if a is None or b is None or a[2] != 0 or b[2] != 0 or b[0] == 0:
        return "n/a"
    return f"{a[0] / b[0]:.2f}x"


def cell(r):
    if r is None:
        return "n/a"
    if r[2] != 0:
        return f"FAILED (exit {r[2]})"
    return f"{r[0]:.2f} s, {r[1] / 1024:.0f} MB"


def bench_image(name, es, scratch):
    docker_tar = fixtures.image(name, "docker-archive")
    layout = fixtures.image(name, "oci")
    warm(docker_tar)
    warm(layout)
    out = os.path.join(scratch, "out")
    r = {}
    layers = oci_layers(layout)
    floor_cmd = " ; ".join(
        f"{'zcat' if mt.endswith('gzip') else 'zstdcat' if mt.endswith('zstd') else 'cat'} '{p}' | sha256sum"
        for mt, p in layers)
    r["floor"] = measure(floor_cmd, scratch, shell=True)
    r["es_unpack"] = measure([es, "unpack", f"oci:{layout}:latest", out], scratch, fresh=True)
    r["umoci_unpack"] = measure(["umoci", "unpack", "--image", f"{layout}:latest", out], scratch, fresh=True)
    for c in ("gzip", "zstd"):
        r[f"es_convert_{c}"] = measure(
            [es, "convert", f"docker-archive:{docker_tar}", f"oci:{out}:latest", "--compress", c], scratch)
        r[f"skopeo_{c}"] = measure(
            ["skopeo", "copy", "-q", "--dest-compress", "--dest-compress-format", c,
             f"docker-archive:{docker_tar}", f"oci:{out}:latest"], scratch)
    # The zstd CLI on the whole (uncompressed) docker-archive: the compression floor for zstd writes.
    r["zstd_cli"] = measure(f"zstd -q -3 -T0 -c '{docker_tar}' > /dev/null", scratch, shell=True)
    # Same input as the floor (gzip OCI layout), so inspect/floor compares like with like.
    r["es_inspect"] = measure([es, "inspect", f"oci:{layout}:latest", "--json"], scratch)
    r["stats"] = image_stats(docker_tar, layout, scratch)
    return r


def report(results, bin_dir):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    ver = lambda cmd: subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     check=False).stdout.strip().splitlines()[0]
    lines = [
        f"Run: `bash bench/run-all.sh {bin_dir}` (BENCH_REPS={REPS}, fastest of the runs kept), "
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        f"Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; "
        f"{ver(['umoci', '--version'])}, {ver(['skopeo', '--version'])}. Machine shared with other "
        "jobs while measuring: compare ratios within a row, not absolute times across runs.",
        "Outputs: " + ("unpack into a fresh loop-mounted ext4 for every run; convert into a scratch directory "
                       "on the host file system, emptied after every run." if Scratch.fresh_ok else
                       "a scratch directory on the host file system, emptied after every run."),
        "",
        "Unpack (OCI layout, gzip layers) — floor = `zcat LAYER | sha256sum` for every layer:",
        "",
        fmt_row(["image", "floor", "edgeslim unpack", "umoci unpack", "edgeslim/floor", "edgeslim/umoci"]),
        fmt_row(["---"] * 6),
    ]
    for name, r in results.items():
        lines.append(fmt_row([name, cell(r["floor"]), cell(r["es_unpack"]), cell(r["umoci_unpack"]),
                              ratio(r["es_unpack"], r["floor"]), ratio(r["es_unpack"], r["umoci_unpack"])]))
    lines += ["", "Convert (docker-archive, uncompressed layers -> OCI layout) and inspect:", "",
              fmt_row(["image", "edgeslim gzip", "skopeo gzip", "ratio", "edgeslim zstd", "skopeo zstd",
                       "ratio", "zstd -3 -T0 CLI", "edgeslim/CLI", "edgeslim inspect", "inspect/floor"]),
              fmt_row(["---"] * 11)]
    for name, r in results.items():
        lines.append(fmt_row([name, cell(r["es_convert_gzip"]), cell(r["skopeo_gzip"]),
                              ratio(r["es_convert_gzip"], r["skopeo_gzip"]), cell(r["es_convert_zstd"]),
                              cell(r["skopeo_zstd"]), ratio(r["es_convert_zstd"], r["skopeo_zstd"]),
                              cell(r.get("zstd_cli")), ratio(r["es_convert_zstd"], r.get("zstd_cli")),
                              cell(r["es_inspect"]), ratio(r["es_inspect"], r["floor"])]))
    lines += ["", "Peak memory against image size and file count (targets: grows with files, not bytes):", "",
              fmt_row(["image", "layer bytes (uncompressed)", "gzip bytes", "files in tree",
                       "unpack RSS", "inspect RSS", "convert gzip RSS", "gzip s/GB", "zstd s/GB"]),
              fmt_row(["---"] * 9)]
    for name, r in results.items():
        raw, comp, files = r["stats"]
        rss = lambda k: f"{r[k][1] / 1024:.0f} MB" if r[k] and r[k][2] == 0 else "n/a"
        spg = lambda k: f"{r[k][0] / (raw / 1e9):.1f}" if r[k] and r[k][2] == 0 else "n/a"
        lines.append(fmt_row([name, f"{raw / 1e6:.0f} MB", f"{comp / 1e6:.0f} MB", str(files),
                              rss("es_unpack"), rss("es_inspect"), rss("es_convert_gzip"),
                              spg("es_convert_gzip"), spg("es_convert_zstd")]))
    failures = [f"- {name} {k}: exit {v[2]}: {v[3]}" for name, r in results.items()
                for k, v in r.items() if k != "stats" and v and v[2] != 0]
    if failures:
        lines += ["", "Failed runs:", ""] + failures
    return "\n".join(lines) + "\n"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    update = "--update" in sys.argv
    bin_dir = args[0] if args else os.path.join(SOURCE, "build", "bin")
    es = os.path.join(os.path.abspath(bin_dir), "edgeslim")
    if not os.access(es, os.X_OK):
        sys.exit(f"bench: {es} is not built")
    results = {}
    for name in IMAGES:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix=f"es-bench-{name}-", dir=os.environ.get("BENCH_TMP")) as scratch:
            results[name] = bench_image(name, es, scratch)
    text = report(results, bin_dir)
    print(text)
    out = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "bench-results.md")
    with open(out, "w") as f:
        f.write(text)
    print(f"bench: written to {out}", file=sys.stderr)
    if update:
        path = os.path.join(SOURCE, "BENCHMARKS.md")
        doc = open(path).read()
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        with open(path + ".tmp", "w") as f:
            f.write(head + BEGIN + "\n" + text + END + tail)
        os.replace(path + ".tmp", path)
        print(f"bench: results section of {path} updated", file=sys.stderr)


if __name__ == "__main__":
    main()
