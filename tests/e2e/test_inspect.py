"""edgeslim inspect end to end: dive's metrics on crafted images equal the hand-computed values
(dive_images.py explains each number), in every transport; the layer table, packages, ELF and
attack surface of a crafted image; the --ci gates with .dive-ci files; and inspect of real
podman-saved images (docker-archive and oci-archive from `podman save`)."""
import json
import os
import tarfile

import pytest

import dive_images as di
from conftest import run_es, run_es_json, skopeo_inspect
from fixtures import image

FORMATS = ["oci", "oci-archive", "docker-archive"]


def inspect_json(ref, *extra, cwd=None, check=True):
    p = run_es("inspect", ref, "--json", *extra, cwd=cwd, check=check)
    return p, json.loads(p.stdout) if p.stdout else None


def check_metrics(report, expect):
    w = report["waste"]
    assert w["efficiency"] == pytest.approx(expect["efficiency"], abs=1e-12)
    assert w["wasted_bytes"] == expect["wasted_bytes"]
    assert w["user_wasted_percent"] == pytest.approx(expect["user_wasted_percent"], abs=1e-12)
    assert w["reclaimable_bytes"] == expect["reclaimable_bytes"]
    assert [l["size"] for l in report["layers"]] == expect["layer_sizes"]


def test_help_and_usage(tmp_path):
    p = run_es("inspect", "--help")
    assert b"--ci-config" in p.stdout and b"--json" in p.stdout
    assert run_es("inspect", check=False).returncode == 2
    assert run_es("inspect", "x", "--top", "0", check=False).returncode == 2
    p = run_es("inspect", str(tmp_path / "missing.tar"), check=False)
    assert p.returncode == 3 and b"missing.tar" in p.stderr


def test_dive_published_example(tmp_path):
    ref = di.write_image(str(tmp_path / "dive"), di.DIVE_EXAMPLE, "oci")
    _, r = inspect_json(ref)
    assert r["waste"]["efficiency"] == 0.75
    check_metrics(r, di.DIVE_EXAMPLE_EXPECT)
    ine = r["waste"]["inefficient_files"]
    assert [(f["path"], f["count"], f["wasted_bytes"]) for f in ine] == [("/etc/nginx/nginx.conf", 2, 7000)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_waste_metrics_every_transport(tmp_path, fmt):
    ref = di.write_image(str(tmp_path / ("img-" + fmt)), di.WASTE, fmt)
    _, r = inspect_json(ref)
    check_metrics(r, di.WASTE_EXPECT)
    assert r["totals"]["final_files"] == di.WASTE_EXPECT["final_files"]
    assert r["totals"]["final_size"] == di.WASTE_EXPECT["final_size"]
    assert [f["path"] for f in r["largest_files"]] == ["/a/f", "/a/o/r", "/a/t"]


def test_layer_table(tmp_path):
    dest = str(tmp_path / "img")
    ref = di.write_image(dest, di.WASTE, "oci")
    _, r = inspect_json(ref)
    manifest_digest = json.load(open(os.path.join(dest, "index.json")))["manifests"][0]["digest"]
    manifest = json.load(open(os.path.join(dest, "blobs", "sha256", manifest_digest.split(":")[1])))
    tars = [di.layer_tar(l) for l in di.WASTE]
    assert len(r["layers"]) == 3
    for i, (l, m, t) in enumerate(zip(r["layers"], manifest["layers"], tars)):
        assert l["index"] == i
        assert l["digest"] == m["digest"]
        assert l["compressed_size"] == m["size"]
        assert l["tar_size"] == len(t)
        assert l["created_by"] == f"crafted layer {i + 1}"  # empty_layer history entries skipped
    assert [l["files"] for l in r["layers"]] == [7, 2, 2]  # whiteouts are not files
    assert [l["whiteouts"] for l in r["layers"]] == [0, 2, 0]
    t = r["totals"]
    assert t["size"] == sum(di.WASTE_EXPECT["layer_sizes"])
    assert t["compressed_size"] == sum(m["size"] for m in manifest["layers"])
    assert r["image"]["manifest_digest"] == manifest_digest


def test_surface_packages_elf(tmp_path):
    cfg = lambda ids: di.default_config(ids, user="0:0", ports=["80/tcp", "443/tcp"])
    ref = di.write_image(str(tmp_path / "surf"), di.surface_layers(), "oci", config=cfg)
    _, r = inspect_json(ref)
    s = r["attack_surface"]
    assert s["user"] == "0:0" and s["runs_as_root"] is True
    assert sorted(s["exposed_ports"]) == ["443/tcp", "80/tcp"]
    assert [x["path"] for x in s["shells"]] == ["/bin/dash", "/bin/sh"]
    assert s["shells"][1]["target"] == "dash"
    assert s["package_managers"] == []  # apt-get was deleted by the second layer
    assert [x["path"] for x in s["setuid"]] == ["/usr/bin/passwd"]
    assert [x["path"] for x in s["setgid"]] == ["/usr/bin/wall"]
    assert [x["path"] for x in s["world_writable"]] == ["/var/drop", "/var/log.txt"]
    assert [x["path"] for x in s["world_writable_sticky_dirs"]] == ["/tmp"]
    caps = s["capabilities"]
    assert len(caps) == 1 and caps[0]["path"] == "/usr/bin/ping"
    assert caps[0]["permitted"] == ["cap_net_bind_service"] and caps[0]["effective"] is True
    p = r["packages"]
    # the final (second layer's) dpkg status wins: tool 2.0 and libfoo; plus apk's two packages
    names = {(x["manager"], x["name"], x["version"]) for x in p["list"]}
    assert names == {("dpkg", "tool", "2.0"), ("dpkg", "libfoo", "0.5-1"),
                     ("apk", "musl", "1.2.4-r2"), ("apk", "busybox", "1.36.1-r5")}
    assert p["count"] == 4
    assert p["installed_size"] == (20 + 3) * 1024 + 622592 + 950272
    e = r["elf"]
    assert e["count"] == 1
    ls = e["files"][0]
    assert ls["path"] == "/bin/ls" and ls["linking"] == "dynamic"
    assert ls["interpreter"] and "ld-" in ls["interpreter"]
    assert ls["stripped"] is True and ls["type"] == "pie-executable"


def test_platform_choice(tmp_path):
    ref = di.write_multiplatform(str(tmp_path / "multi"), {
        "linux/amd64": [[("f", "amd64-only", 100)]],
        "linux/arm64": [[("f", "arm64-only", 200)], [("f", "arm64-only", 300)]],
    })
    _, r = inspect_json(ref, "--platform", "linux/arm64")
    assert r["image"]["architecture"] == "arm64"
    assert [f["path"] for f in r["largest_files"]] == ["/arm64-only"]
    assert r["waste"]["wasted_bytes"] == 500
    _, r = inspect_json(ref, "--platform", "linux/amd64")
    assert r["image"]["architecture"] == "amd64" and r["waste"]["wasted_bytes"] == 0
    p = run_es("inspect", ref, "--platform", "linux/s390x", check=False)
    assert p.returncode == 7


def test_nonroot_user(tmp_path):
    cfg = lambda ids: di.default_config(ids, user="65532:65532")
    ref = di.write_image(str(tmp_path / "nr"), [[("f", "a", 1)]], "oci", config=cfg)
    _, r = inspect_json(ref)
    assert r["attack_surface"]["runs_as_root"] is False


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_ci_gates(tmp_path):
    ref = di.write_image(str(tmp_path / "img"), di.WASTE, "oci")
    work = tmp_path / "work"
    work.mkdir()
    # dive's defaults: efficiency 0.907 >= 0.9 passes, user wasted 1.237 > 0.1 fails -> exit 8
    p, r = inspect_json(ref, "--ci", cwd=str(work), check=False)
    assert p.returncode == 8
    status = {x["rule"]: x["status"] for x in r["ci"]["rules"]}
    assert status == {"lowestEfficiency": "PASS", "highestWastedBytes": "SKIP",
                      "highestUserWastedPercent": "FAIL"}
    assert r["ci"]["config"] is None and r["ci"]["pass"] is False
    # a .dive-ci in the working directory is picked up, as dive does
    write(work / ".dive-ci", "rules:\n  lowestEfficiency: 0.9\n  highestWastedBytes: 3KB\n"
                             "  highestUserWastedPercent: disabled\n")
    p, r = inspect_json(ref, "--ci", cwd=str(work), check=False)
    assert p.returncode == 0 and r["ci"]["pass"] is True and r["ci"]["config"] == ".dive-ci"
    # wasted 2660 > 2KB (2000) fails
    cfg = write(tmp_path / "strict.yml", "rules:\n  highestWastedBytes: \"2KB\"\n"
                                         "  highestUserWastedPercent: disabled\n")
    p, r = inspect_json(ref, "--ci-config", cfg, check=False)
    assert p.returncode == 8
    assert {x["rule"]: x["status"] for x in r["ci"]["rules"]}["highestWastedBytes"] == "FAIL"
    # efficiency gate above the image's efficiency fails; human output names the rule
    cfg = write(tmp_path / "eff.yml", "rules:\n  lowestEfficiency: 0.95\n  highestUserWastedPercent: disabled\n")
    p = run_es("inspect", ref, "--ci-config", cfg, check=False)
    assert p.returncode == 8
    assert b"FAIL  lowestEfficiency" in p.stdout and b"Result: FAIL" in p.stdout
    # a misconfigured value is a format error naming the file and rule
    cfg = write(tmp_path / "bad.yml", "rules:\n  lowestEfficiency: 2\n")
    p = run_es("inspect", ref, "--ci-config", cfg, check=False)
    assert p.returncode == 4 and b"bad.yml" in p.stderr and b"lowestEfficiency" in p.stderr


def test_ci_rule_overrides(tmp_path):
    ref = di.write_image(str(tmp_path / "img"), di.WASTE, "oci")
    work = tmp_path / "w"
    work.mkdir()
    write(work / ".dive-ci", "rules:\n  lowestEfficiency: 0.99\n")
    # the file alone fails (0.907 < 0.99); dive's flag spelling overrides it
    assert run_es("inspect", ref, "--ci", cwd=str(work), check=False).returncode == 8
    p, r = inspect_json(ref, "--lowestEfficiency", "0.5", "--highest-user-wasted-percent", "disabled",
                        cwd=str(work), check=False)
    assert p.returncode == 0 and r["ci"]["pass"] is True
    assert {x["rule"]: x["threshold"] for x in r["ci"]["rules"]}["lowestEfficiency"] == "0.5"
    p = run_es("inspect", ref, "--highest-wasted-bytes", "lots", check=False)
    assert p.returncode == 2 and b"highestWastedBytes" in p.stderr


def test_json_is_deterministic_and_human_output(tmp_path):
    ref = di.write_image(str(tmp_path / "img"), di.WASTE, "oci")
    a = run_es("inspect", ref, "--json").stdout
    b = run_es("inspect", ref, "--json").stdout
    assert a == b
    out = run_es("inspect", ref, "--top", "2").stdout.decode()
    for section in ("LAYER", "TOTAL", "efficiency 90.71 %", "Reclaimable", "Largest files:",
                    "Largest directories:", "Packages:", "ELF files:", "Attack surface:"):
        assert section in out, section
    assert len(json.loads(a)["largest_files"]) == 3  # only three files are left
    assert out.count("  (layer ") == 2  # --top 2


@pytest.fixture(scope="module")
def multilayer_reports():
    reports = {}
    for fmt in ("docker-archive", "oci-archive"):
        path = image("multilayer", fmt)
        reports[fmt] = (path, run_es_json("inspect", f"{fmt}:{path}"))
    return reports


def test_real_podman_images(multilayer_reports):
    (dpath, d), (_, o) = multilayer_reports["docker-archive"], multilayer_reports["oci-archive"]
    # the same image in two formats: the same analysis
    for key in ("waste", "largest_files", "packages", "elf", "attack_surface"):
        assert d[key] == o[key], key
    sk = skopeo_inspect(f"docker-archive:{dpath}")
    assert len(d["layers"]) == len(sk["Layers"])
    assert [l["digest"] for l in d["layers"]] == sk["Layers"]
    assert any("setcap" in (l["created_by"] or "") for l in d["layers"])
    w = d["waste"]
    # /data/big-then-deleted (1 MiB) was written and deleted two layers later
    assert w["reclaimable_bytes"] >= 1048576
    assert any(f["path"] == "/data/big-then-deleted" for f in w["inefficient_files"])
    assert 0 < w["efficiency"] < 1
    s = d["attack_surface"]
    assert "/data/suid" in [x["path"] for x in s["setuid"]]
    assert "/data/sgid" in [x["path"] for x in s["setgid"]]
    assert "/data/ww" in [x["path"] for x in s["world_writable_sticky_dirs"]]
    caps = {x["path"]: x["permitted"] for x in s["capabilities"]}
    assert caps.get("/data/capbin") == ["cap_net_bind_service"]
    assert s["runs_as_root"] is True
    assert any(x["path"].endswith("/bash") for x in s["shells"])
    assert any(x["path"].endswith("/apt-get") for x in s["package_managers"])
    pk = {x["name"] for x in d["packages"]["list"]}
    assert {"libcap2-bin", "dpkg", "libc6"} <= pk
    assert d["packages"]["installed_size"] > 10_000_000
    elf = {x["path"]: x for x in d["elf"]["files"]}
    ls = elf.get("/usr/bin/ls")
    assert ls and ls["linking"] == "dynamic" and ls["interpreter"].startswith("/lib")
    assert elf["/sbin/ldconfig" if "/sbin/ldconfig" in elf else "/usr/sbin/ldconfig"]["linking"] == "static-pie"


def test_hostile_content_is_reported_not_crashed(tmp_path):
    """Garbage where inspect reads content: truncated and corrupt ELF headers, a binary dpkg
    status, an undecodable capability. The report is produced; nothing is invented."""
    ls = di.read_host("/bin/ls")
    layers = [[
        ("d", "bin"), ("f", "bin/trunc", ls[:100], 0o755), ("f", "bin/magic-only", b"\x7fELF", 0o755),
        ("f", "bin/badclass", b"\x7fELF\x07\x09" + bytes(58), 0o755),
        ("f", "bin/huge-counts", ls[:64] + bytes(range(256)) * 4, 0o755),
        ("d", "var"), ("d", "var/lib"), ("d", "var/lib/dpkg"),
        ("f", "var/lib/dpkg/status", bytes(range(256)) * 64),
        ("f", "bin/capgarbage", 10, 0o755, {"security.capability": b"\xff\xff\xff\xff\x01"}),
    ]]
    ref = di.write_image(str(tmp_path / "h"), layers, "oci")
    _, r = inspect_json(ref)
    elf = {f["path"]: f for f in r["elf"]["files"]}
    assert set(elf) == {"/bin/trunc", "/bin/huge-counts"}  # only headers that parse
    assert elf["/bin/trunc"]["stripped"] is None and elf["/bin/trunc"]["interpreter"] is None
    assert r["packages"]["count"] == 0
    caps = r["attack_surface"]["capabilities"]
    assert len(caps) == 1 and caps[0]["valid"] is False


def test_escaping_path_and_bad_digest(tmp_path):
    ref = di.write_image(str(tmp_path / "esc"), [[("f", "a", 1), ("f", "../../evil", 1)]], "oci")
    p = run_es("inspect", ref, check=False)
    assert p.returncode == 6 and b"evil" in p.stderr
    dest = tmp_path / "bad"
    ref = di.write_image(str(dest), di.WASTE, "oci", compress="none")
    idx = json.load(open(dest / "index.json"))
    man = json.load(open(dest / "blobs" / "sha256" / idx["manifests"][0]["digest"].split(":")[1]))
    blob = dest / "blobs" / "sha256" / man["layers"][1]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF  # same size, different digest
    blob.write_bytes(bytes(data))
    p = run_es("inspect", ref, "--json", check=False)
    assert p.returncode == 5 and p.stdout == b""
