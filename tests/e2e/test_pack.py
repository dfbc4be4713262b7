"""edgeslim pack: static binaries -> scratch image, single and multi-platform.

Checked with independent tools: skopeo reads our outputs (both platforms of the index), podman
loads the docker-archive and reports the config we set, `edgeslim run` runs the packed binary,
and packing twice gives the same digest. Bad input (a dynamic binary, a non-ELF file, two
platforms into a docker-archive) fails with the documented exit codes and writes nothing.
"""
import json
import os
import subprocess

import pytest

import shutil
import tempfile

from conftest import PodmanStorage, run, run_es, run_es_json, sha256_file, skopeo_inspect, leftovers

HELLO_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("hello from scratch uid=%d argc=%d\n", (int)getuid(), argc);
    FILE *f = fopen("/etc/ssl/certs/ca-certificates.crt", "r");
    printf("ca=%s\n", f ? "yes" : "no");
    return 0;
}
"""


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    d = tmp_path_factory.mktemp("bins")
    src = d / "hello.c"
    src.write_text(HELLO_C)
    amd = d / "amd64" / "hello"
    arm = d / "arm64" / "hello"
    dyn = d / "dyn" / "hello"
    for p in (amd, arm, dyn):
        p.parent.mkdir()
    run(["gcc", "-static", "-Os", "-s", "-o", str(amd), str(src)])
    run(["aarch64-linux-gnu-gcc", "-static", "-Os", "-s", "-o", str(arm), str(src)])
    run(["gcc", "-Os", "-o", str(dyn), str(src)])
    return {"amd64": str(amd), "arm64": str(arm), "dynamic": str(dyn), "dir": d}


@pytest.fixture
def podman_short():
    # podman refuses a runroot longer than 50 characters: keep the storage under a short path.
    base = tempfile.mkdtemp(prefix="espk", dir="/tmp")
    storage = PodmanStorage(base)
    yield storage
    storage.cleanup()
    shutil.rmtree(base, ignore_errors=True)


def test_single_platform_loads_and_runs(binaries, tmp_path, podman_short):
    podman_tmp = podman_short
    out = tmp_path / "hello.tar"
    res = run_es_json("pack", binaries["amd64"], "--ca-certs", "--port", "8080",
                      "-o", f"docker-archive:{out}")
    assert [p["platform"] for p in res["platforms"]] == ["linux/amd64"]
    info = skopeo_inspect(f"docker-archive:{out}")
    assert info["Architecture"] == "amd64"
    cfg = skopeo_inspect(f"docker-archive:{out}", config=True)["config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["/usr/local/bin/hello"]
    assert "8080/tcp" in cfg["ExposedPorts"]

    refs = podman_tmp.load(str(out))
    p = podman_tmp("image", "inspect", refs[0])
    podman_info = json.loads(p.stdout)[0]
    assert podman_info["Config"]["User"] == "65532:65532"
    # The whole image (binary + CA bundle + passwd) is small: a static hello is ~700 kB.
    assert podman_info["Size"] < 2_000_000

    # like `docker run IMAGE x`: the arguments replace Cmd and follow the Entrypoint
    r = run_es("run", f"docker-archive:{out}", "--", "x")
    text = r.stdout.decode()
    assert "hello from scratch uid=65532 argc=2" in text
    assert "ca=yes" in text


def test_multi_platform_index(binaries, tmp_path):
    out = tmp_path / "idx"
    res = run_es_json("pack", binaries["amd64"], binaries["arm64"], "--ca-certs",
                      "-o", f"oci:{out}:latest")
    plats = sorted(p["platform"] for p in res["platforms"])
    assert plats == ["linux/amd64", "linux/arm64/v8"]
    raw = skopeo_inspect(f"oci:{out}:latest", raw=True)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    archs = sorted(m["platform"]["architecture"] for m in raw["manifests"])
    assert archs == ["amd64", "arm64"]
    p = run(["skopeo", "--override-arch", "arm64", "inspect", f"oci:{out}:latest"])
    assert json.loads(p.stdout)["Architecture"] == "arm64"
    # our own reader picks a platform from the index as asked
    j = run_es_json("inspect", f"oci:{out}:latest", "--platform", "linux/arm64")
    assert "arm64" in json.dumps(j)


def test_deterministic(binaries, tmp_path):
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    for out in (a, b):
        run_es("pack", binaries["amd64"], binaries["arm64"], "--ca-certs",
               "-o", f"oci-archive:{out}:v1", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert sha256_file(a) == sha256_file(b)


@pytest.mark.parametrize("case,code", [("dynamic", 7), ("notelf", 4), ("twoplat", 7)])
def test_bad_input(binaries, tmp_path, case, code):
    before = set(os.listdir(tmp_path))
    out = tmp_path / "out.tar"
    if case == "dynamic":
        args = [binaries["dynamic"]]
    elif case == "notelf":
        f = tmp_path / "script.sh"
        f.write_text("#!/bin/sh\necho hi\n")
        before.add("script.sh")
        args = [str(f)]
    else:
        args = [binaries["amd64"], binaries["arm64"]]
    p = run_es("pack", *args, "-o", f"docker-archive:{out}", check=False)
    assert p.returncode == code, p.stderr
    err = p.stderr.decode().strip()
    assert err.startswith("edgeslim pack: ") and "\n" not in err
    assert not out.exists()
    assert leftovers(str(tmp_path), before) == []
