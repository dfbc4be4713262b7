"""Shared helpers for the end-to-end tests (pytest picks this file up for every tests/e2e test).

- Binaries come from $ES_BIN (set by CTest to the build's bin/), defaulting to build/bin. A missing
  binary FAILS the test (never skips): a command that is not built is a failure to report.
- run_es(...) runs edgeslim with captured output; run(...) any other command.
- Podman checks that load images use a private, throw-away storage (podman_tmp, overlay), so tests never
  re-tag or remove the fixture images in the host's storage.
- Fixture images: see fixtures.py (image(name, fmt), podman_ref(name)).
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import pytest

SOURCE_DIR = os.environ.get(
    "ES_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
ES_BIN = os.environ.get("ES_BIN") or os.path.join(SOURCE_DIR, "build", "bin")


def bin_path(name="edgeslim"):
    """Path of a built binary; fails the test if it is not there."""
    path = os.path.join(ES_BIN, name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built (ES_BIN={ES_BIN})", pytrace=False)
    return path


def run(cmd, check=True, env=None, timeout=900, input=None, cwd=None):
    """Runs a command, capturing stdout/stderr as bytes. check=True fails the test on non-zero."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                       timeout=timeout, input=input, cwd=cwd, check=False)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {p.returncode}\nstderr: "
                    f"{p.stderr.decode(errors='replace')[-3000:]}", pytrace=False)
    return p


def run_es(*args, check=True, env=None, timeout=900, cwd=None):
    """Runs `edgeslim ARGS...`; returns the CompletedProcess (stdout/stderr as bytes)."""
    return run([bin_path("edgeslim"), *map(str, args)], check=check, env=env, timeout=timeout,
               cwd=cwd)


def run_es_json(*args, env=None):
    """Runs an edgeslim command that takes --json and returns the parsed output."""
    p = run_es(*args, "--json", env=env)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        pytest.fail(f"edgeslim {' '.join(map(str, args))} --json printed invalid JSON: {e}\n"
                    f"{p.stdout[:500]!r}", pytrace=False)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(path):
    """sha256 over every regular file below path (relative name + content), for directories."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            h.update(os.path.relpath(full, path).encode() + b"\0")
            h.update(sha256_file(full).encode())
    return h.hexdigest()


def skopeo_inspect(ref, raw=False, config=False):
    """skopeo inspect [--raw|--config] REF, parsed. Fails the test if skopeo cannot read it."""
    cmd = ["skopeo", "inspect"]
    if raw:
        cmd.append("--raw")
    if config:
        cmd.append("--config")
    p = run(cmd + [ref])
    return json.loads(p.stdout)


class PodmanStorage:
    """A private podman storage (overlay driver: vfs copies every layer and is 5x slower) under a temp dir: load and inspect images without
    touching the host's storage; removed with the temp dir."""

    def __init__(self, base):
        # podman refuses a runroot longer than 50 characters: keep it short, under /tmp.
        self.runroot = tempfile.mkdtemp(prefix="es-podman-", dir="/tmp")
        self.args = ["podman", "--root", os.path.join(base, "root"), "--runroot",
                     self.runroot, "--storage-driver", "overlay"]

    def __call__(self, *args, check=True):
        return run(self.args + list(map(str, args)), check=check)

    def load(self, archive):
        """podman load -i ARCHIVE; returns the loaded reference(s) podman printed."""
        p = self("load", "-i", archive)
        out = p.stdout.decode()
        refs = [line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.startswith("Loaded image")]
        if not refs:
            pytest.fail(f"podman load -i {archive} loaded nothing: {out}", pytrace=False)
        return refs

    def rootfs_layers(self, ref):
        p = self("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref)
        return json.loads(p.stdout)

    def cleanup(self):
        # Remove the images through podman (it unmounts and keeps its bookkeeping consistent);
        # the directories go with the test's temp dir.
        self("rmi", "-a", "-f", check=False)
        shutil.rmtree(self.runroot, ignore_errors=True)


@pytest.fixture
def podman_tmp(tmp_path):
    storage = PodmanStorage(str(tmp_path / "podman"))
    yield storage
    storage.cleanup()


def host_rootfs_layers(ref):
    """RootFS diff_ids of an image in the host's podman storage."""
    p = run(["podman", "image", "inspect", "--format", "{{json .RootFS.Layers}}", ref])
    return json.loads(p.stdout)


def leftovers(parent, before):
    """Names in directory `parent` that were not in the set `before` (temp files left behind)."""
    return sorted(set(os.listdir(parent)) - set(before))


def copy_file(src, dst):
    shutil.copyfile(src, dst)
    return dst
