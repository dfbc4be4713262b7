"""edgeslim import: a root filesystem directory or tar becomes a one-layer image that podman
loads with the config we asked for, that unpacks back to the same tree, and that is
byte-identical when imported twice."""
import gzip
import hashlib
import json
import os
import stat
import tarfile

import shutil
import tempfile

import pytest

from conftest import PodmanStorage, run, run_es, run_es_json
from test_unpack import differences, tree


def make_rootfs(root):
    """A small tree with the details images carry: nested dirs, hardlink, symlinks, setuid,
    a file capability (when the file system takes it), an empty dir, odd modes."""
    os.makedirs(root / "usr" / "bin")
    os.makedirs(root / "etc")
    os.makedirs(root / "var" / "empty")
    (root / "etc" / "hostname").write_text("edge\n")
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    os.chmod(root / "usr" / "bin" / "tool", 0o4755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool2")
    os.symlink("tool", root / "usr" / "bin" / "sh")
    os.symlink("/etc/hostname", root / "etc" / "abs-link")
    (root / "secret").write_text("s")
    os.chmod(root / "secret", 0o600)
    try:
        os.setxattr(root / "usr" / "bin" / "tool", "security.capability",
                    bytes([1, 0, 0, 2, 0, 4, 0, 0] + [0] * 12))
    except OSError:
        pass
    with open(root / "big", "wb") as f:
        f.write(b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(100000)))


@pytest.fixture
def podman_short():
    """A private podman storage under a short path (podman refuses run roots over 50 chars,
    which pytest's tmp_path of a long test name exceeds)."""
    base = tempfile.mkdtemp(prefix="esimp-", dir="/tmp")
    storage = PodmanStorage(base)
    yield storage
    storage.cleanup()
    shutil.rmtree(base, ignore_errors=True)


def test_import_dir_podman_loads_config(tmp_path, podman_short):
    podman_tmp = podman_short
    root = tmp_path / "rootfs"
    make_rootfs(root)
    archive = tmp_path / "img.tar"
    res = run_es_json("import", root, "-o", f"docker-archive:{archive}:localhost/imported:1",
                      "--entrypoint", '["/usr/bin/tool","-x"]', "--cmd", "serve --port 80",
                      "--env", "A=1", "--env", "B=two words", "--workdir", "/srv", "--user", "65532:65532",
                      "--port", "8080", "--port", "53/udp", "--label", "org.example=yes")
    assert res["layer"]["compression"] == "gzip"
    podman_tmp.load(str(archive))
    p = podman_tmp("image", "inspect", "localhost/imported:1")
    info = json.loads(p.stdout)[0]
    cfg = info["Config"]
    assert cfg["Entrypoint"] == ["/usr/bin/tool", "-x"]
    assert cfg["Cmd"] == ["serve", "--port", "80"]
    assert "A=1" in cfg["Env"] and "B=two words" in cfg["Env"]
    assert any(e.startswith("PATH=") for e in cfg["Env"])
    assert cfg["WorkingDir"] == "/srv"
    assert cfg["User"] == "65532:65532"
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert cfg["Labels"] == {"org.example": "yes"}
    assert info["RootFS"]["Layers"] == [res["layer"]["diff_id"]]
    assert info["Architecture"] and info["Os"] == "linux"


def test_import_is_deterministic(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(root)
    outs = []
    for i, env in enumerate(({}, {"SOURCE_DATE_EPOCH": "1700000000"})):
        for j in range(2):
            path = tmp_path / f"img-{i}-{j}.tar"
            res = run_es_json("import", root, "-o", f"oci-archive:{path}", env=env)
            res.pop("image")
            outs.append((res, hashlib.sha256(path.read_bytes()).hexdigest()))
    assert outs[0] == outs[1]
    assert outs[2] == outs[3]
    # SOURCE_DATE_EPOCH changes the config (created) and clamps the mtimes: a different image.
    assert outs[0][0]["manifest_digest"] != outs[2][0]["manifest_digest"]
    # Touching a file's atime does not change anything.
    os.utime(root / "etc" / "hostname", (1, os.lstat(root / "etc" / "hostname").st_mtime))
    res = run_es_json("import", root, "-o", f"oci-archive:{tmp_path / 'again.tar'}")
    res.pop("image")
    assert res == outs[0][0]


def test_import_roundtrip_through_unpack(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(root)
    for comp in ("gzip", "zstd", "none"):
        layout = tmp_path / f"oci-{comp}"
        res = run_es_json("import", root, "-o", f"oci:{layout}:v1", "--compress", comp)
        assert res["layer"]["compression"] == comp
        out = tmp_path / f"unpacked-{comp}"
        run_es("unpack", f"oci:{layout}:v1", out)
        a, b = tree(str(root)), tree(str(out))
        # Directory mtimes change while we build the source tree; everything else must match.
        assert [d for d in differences(a, b) if "dir_mtime" not in d] == []
        assert os.lstat(out / "usr" / "bin" / "tool").st_ino == os.lstat(out / "usr" / "bin" / "tool2").st_ino


def test_import_tar_keeps_content(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(root)
    tarpath = tmp_path / "rootfs.tar.gz"
    with tarfile.open(tarpath, "w:gz", format=tarfile.PAX_FORMAT) as t:
        t.add(root, arcname=".")
    res = run_es_json("import", tarpath, "-o", f"oci:{tmp_path / 'layout'}")
    out = tmp_path / "out"
    run_es("unpack", f"oci:{tmp_path / 'layout'}", out)
    a, b = tree(str(root)), tree(str(out))
    assert [d for d in differences(a, b) if "dir_mtime" not in d and "cap" not in d] == []
    # The tar importer is deterministic too.
    res2 = run_es_json("import", tarpath, "-o", f"oci:{tmp_path / 'layout2'}")
    assert res == {**res2, "image": res["image"]}
    # skopeo reads what we wrote.
    p = run(["skopeo", "inspect", f"oci:{tmp_path / 'layout'}"])
    assert json.loads(p.stdout)["Layers"] == [res["layer"]["digest"]]


def test_import_hostile_tar_refused(tmp_path):
    tarpath = tmp_path / "evil.tar"
    with tarfile.open(tarpath, "w") as t:
        ti = tarfile.TarInfo("../../escape")
        ti.size = 1
        import io
        t.addfile(ti, io.BytesIO(b"x"))
    before = set(os.listdir(tmp_path))
    p = run_es("import", tarpath, "-o", f"oci:{tmp_path / 'layout'}", check=False)
    assert p.returncode == 6, p.stderr
    assert b"escape" in p.stderr
    assert set(os.listdir(tmp_path)) == before


def test_usage_errors():
    assert b"Usage: edgeslim import" in run_es("import", "--help").stdout
    assert run_es("import", "/", check=False).returncode == 2  # no -o
    assert run_es("import", "/", "-o", "oci:/nonexistent/x", "--port", "http", check=False).returncode == 2
    assert run_es("import", "/", "-o", "oci:/x", "--entrypoint", '["a",1]', check=False).returncode == 2
    assert run_es("import", "/", "-o", "oci:/x", "--compress", "lz4", check=False).returncode == 2


def test_output_inside_input_refused(tmp_path):
    root = tmp_path / "rootfs"
    make_rootfs(root)
    before = sorted(os.listdir(root))
    p = run_es("import", root, "-o", f"oci:{root / 'out'}", check=False)
    assert p.returncode == 2 and b"must not be inside" in p.stderr
    assert sorted(os.listdir(root)) == before
