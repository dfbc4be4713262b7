"""edgeslim unpack against umoci unpack on real images, and against hostile layers.

The fixture images (tests/e2e/fixtures.py) are built from Debian's packages; `multilayer` holds
hardlinks, symlinks, setuid/setgid, a file capability, a fifo, long names, file and directory
deletes and an opaque directory across layers. For each image both tools unpack the same OCI
layout and the trees must be equal: paths, types, modes, owners, link targets, file contents,
file capabilities and mtimes (directory mtimes are compared too; a difference is reported).
Hostile images are written here by hand (OCI layout, layer bytes chosen by the test).
"""
import gzip
import hashlib
import json
import os
import stat
import tarfile
import io

import pytest

from conftest import run, run_es, run_es_json
import fixtures


def tree(root):
    """path -> attributes for everything below root (lstat, never following links)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            info = {"type": stat.S_IFMT(st.st_mode), "mode": st.st_mode & 0o7777,
                    "owner": (st.st_uid, st.st_gid)}
            if stat.S_ISLNK(st.st_mode):
                info["link"] = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                info["sha256"] = h.hexdigest()
                info["mtime"] = int(st.st_mtime)
                info["nlink"] = st.st_nlink
                try:
                    info["cap"] = os.getxattr(p, "security.capability", follow_symlinks=False)
                except OSError:
                    pass
            elif stat.S_ISDIR(st.st_mode):
                info["dir_mtime"] = int(st.st_mtime)
            out[os.path.relpath(p, root)] = info
    return out


def differences(a, b, limit=30):
    diffs = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            diffs.append(f"{k}: only in {'edgeslim' if k in a else 'umoci'}")
            continue
        for f in sorted(set(a[k]) | set(b[k])):
            if a[k].get(f) != b[k].get(f):
                diffs.append(f"{k}: {f} edgeslim={a[k].get(f)!r} umoci={b[k].get(f)!r}")
    return diffs[:limit]


@pytest.mark.parametrize("name", ["multilayer", "nginx"])
def test_same_tree_as_umoci(name, tmp_path):
    layout = fixtures.image(name, "oci")
    ours = tmp_path / "ours"
    run_es("unpack", f"oci:{layout}:latest", ours)
    run(["umoci", "unpack", "--image", f"{layout}:latest", str(tmp_path / "bundle")])
    a, b = tree(str(ours)), tree(str(tmp_path / "bundle" / "rootfs"))
    assert len(a) > 100
    diffs = differences(a, b)
    dir_only = [d for d in diffs if "dir_mtime" in d]
    if dir_only:
        print("directory mtimes differ from umoci:", *dir_only, sep="\n  ")
    assert [d for d in diffs if "dir_mtime" not in d] == []
    assert dir_only == []


def test_multilayer_details(tmp_path):
    out = tmp_path / "root"
    stats = run_es_json("unpack", fixtures.image("multilayer", "docker-archive"), out)
    assert fixtures.check_multilayer_tree(str(out)) == []
    assert stats["whiteouts"] >= 4 and stats["hardlinks"] >= 1 and stats["layers"] >= 3
    # Whiteout markers are applied, never materialised.
    assert not [p for p in tree(str(out)) if os.path.basename(p).startswith(".wh.")]


def test_transports_give_the_same_tree(tmp_path):
    trees = []
    for fmt, ref in (("docker-archive", "docker-archive:{}"), ("oci-archive", "oci-archive:{}"),
                     ("oci", "oci:{}:latest")):
        out = tmp_path / fmt
        run_es("unpack", ref.format(fixtures.image("multilayer", fmt)), out)
        trees.append(tree(str(out)))
    assert differences(trees[0], trees[1]) == []
    assert differences(trees[0], trees[2]) == []


# ------------------------------------------------------------------ hand-made hostile images

def _blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d


def make_oci(layout, layers, diff_ids=None):
    """An OCI layout with the given gzip'd layer blobs; diff_ids default to the real ones."""
    if diff_ids is None:
        diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(l)).hexdigest() for l in layers]
    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _blob(layout, l),
              "size": len(l)} for l in layers]
    config = json.dumps({"architecture": host_arch(), "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _blob(layout, config), "size": len(config)},
                           "layers": descs}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": _blob(layout, manifest), "size": len(manifest),
             "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return f"oci:{layout}:latest"


def host_arch():
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def tar_of(*members):
    """members: (name, kind, payload) with kind file|dir|symlink|hardlink|chardev."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = payload.encode()
                ti.size = len(data)
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
            elif kind == "chardev":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, mtime=0)


def assert_refused(tmp_path, ref, code, words):
    out = tmp_path / "out"
    before = set(os.listdir(tmp_path))
    p = run_es("unpack", ref, out, check=False)
    err = p.stderr.decode()
    assert p.returncode == code, err
    assert err.count("\n") == 1 and err.startswith("edgeslim unpack: "), err
    for w in words:
        assert w in err, err
    assert not out.exists()
    assert set(os.listdir(tmp_path)) == before  # no temporary directory left behind


def test_dotdot_entry_refused(tmp_path):
    ref = make_oci(str(tmp_path / "img"), [gz(tar_of(("ok", "file", "1"), ("a/../../evil", "file", "x")))])
    assert_refused(tmp_path, ref, 6, ["a/../../evil", "escapes"])
    assert not os.path.exists(tmp_path / "evil")


def test_hardlink_out_of_root_refused(tmp_path):
    ref = make_oci(str(tmp_path / "img"), [gz(tar_of(("h", "hardlink", "../../../etc/passwd")))])
    assert_refused(tmp_path, ref, 6, ["hardlink"])


def test_symlink_parent_stays_inside(tmp_path):
    before = os.stat("/etc/passwd")
    ref = make_oci(str(tmp_path / "img"), [gz(tar_of(("etc", "dir", None), ("link", "symlink", "/etc"),
                                                       ("link/passwd", "file", "owned\n")))])
    run_es("unpack", ref, tmp_path / "out")
    after = os.stat("/etc/passwd")
    assert (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)
    assert (tmp_path / "out" / "etc" / "passwd").read_text() == "owned\n"


def test_truncated_gzip_layer(tmp_path):
    good = gz(tar_of(("f", "file", "x" * 5000)))
    ref = make_oci(str(tmp_path / "img"), [good[:-20]],
                   diff_ids=["sha256:" + hashlib.sha256(gzip.decompress(good)).hexdigest()])
    assert_refused(tmp_path, ref, 4, ["truncated gzip", "layer 1"])


def test_diff_id_mismatch(tmp_path):
    ref = make_oci(str(tmp_path / "img"), [gz(tar_of(("f", "file", "x")))], diff_ids=["sha256:" + "0" * 64])
    assert_refused(tmp_path, ref, 5, ["diff_id mismatch"])


def test_bomb_refused(tmp_path):
    ref = make_oci(str(tmp_path / "img"), [gz(tar_of(("big", "file", "\0" * (8 << 20))))])
    out = tmp_path / "out"
    p = run_es("unpack", ref, out, check=False, env={"ES_MAX_RATIO": "20", "ES_RATIO_FLOOR": "1048576"})
    assert p.returncode == 6, p.stderr
    assert b"bomb" in p.stderr
    assert not out.exists()


def test_device_nodes(tmp_path):
    ref = make_oci(str(tmp_path / "img"), [gz(tar_of(("dev", "dir", None), ("dev/null", "chardev", None)))])
    assert_refused(tmp_path, ref, 6, ["dev/null", "device"])
    stats = run_es_json("unpack", "--skip-devices", ref, tmp_path / "skipped")
    assert stats["skipped_devices"] == 1
    assert not os.path.lexists(tmp_path / "skipped" / "dev" / "null")
    if os.geteuid() == 0:
        run_es("unpack", "--allow-devices", ref, tmp_path / "allowed")
        assert stat.S_ISCHR(os.lstat(tmp_path / "allowed" / "dev" / "null").st_mode)


def test_non_empty_target_refused(tmp_path):
    ref = make_oci(str(tmp_path / "img"), [gz(tar_of(("f", "file", "x")))])
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious").write_text("keep")
    p = run_es("unpack", ref, target, check=False)
    assert p.returncode == 3 and b"not empty" in p.stderr
    assert (target / "precious").read_text() == "keep"
    # An existing empty directory is fine.
    (target / "precious").unlink()
    run_es("unpack", ref, target)
    assert (target / "f").read_text() == "x"


def test_help_and_usage():
    p = run_es("unpack", "--help")
    assert b"Usage: edgeslim unpack IMAGE DIR" in p.stdout
    assert run_es("unpack", check=False).returncode == 2
    assert run_es("unpack", "--bogus", "a", "b", check=False).returncode == 2


def test_platform_choice(tmp_path):
    """A two-platform index: the host's by default, the other with --platform, exit 7 for one
    the index lacks."""
    layout = str(tmp_path / "img")
    entries = []
    for arch in ("amd64", "arm64"):
        layer = gz(tar_of(("arch", "file", arch)))
        diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
        config = json.dumps({"architecture": arch, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _blob(layout, config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": _blob(layout, layer), "size": len(layer)}]}).encode()
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": _blob(layout, manifest), "size": len(manifest),
                        "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    inner = _blob(layout, index)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": inner,
            "size": len(index), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    host = host_arch()
    if host in ("amd64", "arm64"):
        run_es("unpack", f"oci:{layout}:latest", tmp_path / "host")
        assert (tmp_path / "host" / "arch").read_text() == host
    for arch in ("amd64", "arm64"):
        run_es("unpack", "--platform", f"linux/{arch}", f"oci:{layout}:latest", tmp_path / arch)
        assert (tmp_path / arch / "arch").read_text() == arch
    p = run_es("unpack", "--platform", "linux/s390x", f"oci:{layout}:latest", tmp_path / "none", check=False)
    assert p.returncode == 7, p.stderr
    assert not (tmp_path / "none").exists()
