"""Fixture images for the end-to-end tests: real images built from Debian's packages by
tests/fixtures/build.sh (via scripts/fixtures.sh) and cached outside the repository in
${ES_FIXTURE_CACHE:-~/.cache/edgeslim/fixtures}, keyed by a hash of the recipe.

Stable API (other test files rely on it):
    image(name, fmt="docker-archive") -> str   path of the fixture in that format:
        "docker-archive"  podman save --format docker-archive (uncompressed layers)
        "oci-archive"     podman save --format oci-archive (uncompressed layers)
        "oci"             an OCI layout directory with gzip layers, tag "latest"
                          (use it as f"oci:{path}:latest" or f"oci:{path}")
    podman_ref(name) -> str   the image's reference in podman's storage (loaded if missing)
    fixture_dir(name) -> str  the fixture's cache directory
Names: the recipe directories in tests/fixtures/ (base nginx python static multilayer fat ...).
The first call builds what is missing (minutes
from scratch; parallel callers wait on a lock instead of building twice).
"""
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile

SOURCE_DIR = os.environ.get(
    "ES_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
BUILDER = os.path.join(SOURCE_DIR, "scripts", "fixtures.sh")
RECIPES = os.path.join(SOURCE_DIR, "tests", "fixtures")
# Every recipe directory is a fixture (a new recipe needs no edit here).
NAMES = tuple(sorted(
    d for d in os.listdir(RECIPES)
    if any(os.path.exists(os.path.join(RECIPES, d, f)) for f in ("Containerfile", "rootfs.sh"))))
FORMATS = {"docker-archive": "docker.tar", "oci-archive": "oci.tar", "oci": "oci"}

_dirs = {}


def fixture_dir(name):
    """Builds the fixture if needed (cached) and returns its cache directory."""
    if name not in NAMES:
        raise ValueError(f"unknown fixture {name!r}; known: {', '.join(NAMES)}")
    if name not in _dirs:
        out = subprocess.run(
            ["bash", BUILDER, "--path", name], stdout=subprocess.PIPE, text=True, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"building fixture {name} failed (exit {out.returncode}); see stderr")
        _dirs[name] = out.stdout.strip().splitlines()[-1]
    return _dirs[name]


def image(name, fmt="docker-archive"):
    """Path of fixture `name` in format `fmt` (docker-archive | oci-archive | oci)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown fixture format {fmt!r}; known: {', '.join(FORMATS)}")
    path = os.path.join(fixture_dir(name), FORMATS[fmt])
    if not os.path.exists(path):
        raise RuntimeError(f"fixture {name}: {path} missing from the cache")
    return path


def podman_ref(name):
    """Reference of the fixture in podman's storage; reloads it there if it was removed."""
    out = subprocess.run(
        ["bash", BUILDER, "--ref", name], stdout=subprocess.PIPE, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


# What the multilayer recipe (tests/fixtures/multilayer/Containerfile) leaves in the final
# tree, for tests that check whiteouts, links and special files were applied correctly.
LONG_DIR = "data/long/" + "d" * 100 + "/" + "e" * 100
MULTILAYER_EXPECT = {
    "files": {  # path -> content
        "data/dir1/b": b"b\nmore\n",
        "data/dir1/c": b"c\n",
        "data/keep": b"keep\n",
        "data/meta": b"meta\n",
        "data/hardlink": b"keep\n",
        "data/overwrite": b"v2\n",
        "data/opaque/new": b"new\n",
        "data/owned": b"owned\n",
        LONG_DIR + "/" + "f" * 150 + ".txt": b"long\n",
    },
    "absent": [
        "data/dir1/a",
        "data/todelete",
        "data/opaque/old1",
        "data/opaque/old2",
        "data/big-then-deleted",
    ],
    "symlinks": {"data/sym-rel": "keep", "data/sym-abs": "/data/keep", "data/sym-dangling": "missing"},
    "modes": {"data/suid": 0o4755, "data/sgid": 0o2755, "data/ww": 0o1777, "data/meta": 0o600,
              "data/owned": 0o640},
    "owners": {"data/owned": (1234, 5678)},
    "fifo": ["data/fifo"],
    "capability": ["data/capbin"],
    "hardlinks": [("data/keep", "data/hardlink")],
}


def check_multilayer_tree(root):
    """Compares an unpacked multilayer fixture at `root` with MULTILAYER_EXPECT; returns a list of
    differences (empty when the tree is right)."""
    exp, problems = MULTILAYER_EXPECT, []

    def at(rel):
        return os.path.join(root, rel)

    for rel, content in exp["files"].items():
        try:
            with open(at(rel), "rb") as f:
                got = f.read()
            if got != content:
                problems.append(f"{rel}: content {got[:40]!r}, expected {content!r}")
        except OSError as e:
            problems.append(f"{rel}: {e.strerror}")
    for rel in exp["absent"]:
        if os.path.lexists(at(rel)):
            problems.append(f"{rel}: exists, but a later layer deleted it")
    for rel, target in exp["symlinks"].items():
        if not os.path.islink(at(rel)):
            problems.append(f"{rel}: not a symlink")
        elif os.readlink(at(rel)) != target:
            problems.append(f"{rel}: points to {os.readlink(at(rel))!r}, expected {target!r}")
    for rel, mode in exp["modes"].items():
        if os.path.lexists(at(rel)):
            got = os.lstat(at(rel)).st_mode & 0o7777
            if got != mode:
                problems.append(f"{rel}: mode {got:o}, expected {mode:o}")
    for rel, (uid, gid) in exp["owners"].items():
        if os.path.lexists(at(rel)):
            st = os.lstat(at(rel))
            if (st.st_uid, st.st_gid) != (uid, gid):
                problems.append(f"{rel}: owner {st.st_uid}:{st.st_gid}, expected {uid}:{gid}")
    for rel in exp["fifo"]:
        if not os.path.lexists(at(rel)) or not stat.S_ISFIFO(os.lstat(at(rel)).st_mode):
            problems.append(f"{rel}: not a fifo")
    for rel in exp["capability"]:
        try:
            cap = os.getxattr(at(rel), "security.capability", follow_symlinks=False)
            if len(cap) < 20 or cap[0] not in (1, 2, 3):  # vfs_cap_data revision byte
                problems.append(f"{rel}: security.capability malformed: {cap!r}")
        except OSError as e:
            problems.append(f"{rel}: no security.capability xattr ({e.strerror})")
    for a, b in exp["hardlinks"]:
        if os.path.lexists(at(a)) and os.path.lexists(at(b)):
            sa, sb = os.lstat(at(a)), os.lstat(at(b))
            if (sa.st_dev, sa.st_ino) != (sb.st_dev, sb.st_ino):
                problems.append(f"{a} and {b}: not hardlinked")
    return problems


# ------------------------------------------------------------------ docker save layouts
# podman writes `<diffid>.tar` layers plus `<id>/layer.tar` symlinks; Docker before 25 wrote
# `<v1-id>/{VERSION,json,layer.tar}` + `<config-hex>.json`; Docker 25+ writes an OCI layout
# (`oci-layout`, `index.json`, `blobs/sha256/...`, layers uncompressed, blob digest = diff_id)
# plus the legacy `manifest.json` and `repositories`. No Docker engine runs here, so the two
# Docker layouts are synthesised from a podman-saved archive, entry for entry as Docker writes
# them (a tar of a directory: names in lexical order, directories before their contents).

def _podman_archive_parts(src):
    tf = tarfile.open(src)
    manifest = json.load(tf.extractfile("manifest.json"))[0]
    config_bytes = tf.extractfile(manifest["Config"]).read()
    return tf, manifest, config_bytes


def _add_bytes(out, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, 0
    out.addfile(ti, io.BytesIO(data))


def _add_dir(out, name):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
    out.addfile(ti)


def _add_member_as(out, tf, member_name, new_name):
    src = tf.getmember(member_name)
    while src.issym():  # podman's <id>/layer.tar are symlinks to ../<diffid>.tar
        src = tf.getmember(os.path.normpath(os.path.join(os.path.dirname(src.name), src.linkname)))
    ti = tarfile.TarInfo(new_name)
    ti.size, ti.mode, ti.mtime = src.size, 0o644, 0
    out.addfile(ti, tf.extractfile(src))


def _write_pre25(tf, manifest, config_bytes, out):
    config = json.loads(config_bytes)
    diff_ids = config["rootfs"]["diff_ids"]
    ids, parent = [], ""
    for d in diff_ids:  # Docker's v1 ids chain the parent id and the diff_id
        parent = hashlib.sha256(f"{parent} {d}".encode()).hexdigest()
        ids.append(parent)
    entries = {}
    for i, (lid, layer) in enumerate(zip(ids, manifest["Layers"])):
        v1 = {"id": lid, "created": "1970-01-01T00:00:00Z", "os": config.get("os", "linux")}
        if i:
            v1["parent"] = ids[i - 1]
        if i == len(ids) - 1:
            v1["config"] = config.get("config", {})
            v1["architecture"] = config.get("architecture", "amd64")
        entries[lid + "/"] = ("dir", None)
        entries[lid + "/VERSION"] = ("bytes", b"1.0")
        entries[lid + "/json"] = ("bytes", json.dumps(v1, separators=(",", ":")).encode())
        entries[lid + "/layer.tar"] = ("member", layer)
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    entries[config_hex + ".json"] = ("bytes", config_bytes)
    tags = manifest.get("RepoTags") or []
    entries["manifest.json"] = ("bytes", json.dumps([{
        "Config": config_hex + ".json", "RepoTags": tags,
        "Layers": [lid + "/layer.tar" for lid in ids]}], separators=(",", ":")).encode())
    repos = {}
    for t in tags:
        repo, _, tag = t.rpartition(":")
        repos.setdefault(repo, {})[tag] = ids[-1]
    entries["repositories"] = ("bytes", json.dumps(repos, separators=(",", ":")).encode())
    return entries


def _write_docker25(tf, manifest, config_bytes, out):
    config = json.loads(config_bytes)
    diff_ids = config["rootfs"]["diff_ids"]
    entries = {"blobs/": ("dir", None), "blobs/sha256/": ("dir", None)}
    layer_descs = []
    for d, layer in zip(diff_ids, manifest["Layers"]):
        hexd = d.split(":", 1)[1]
        entries["blobs/sha256/" + hexd] = ("member", layer)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": d, "size": tf.getmember(layer).size})
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    entries["blobs/sha256/" + config_hex] = ("bytes", config_bytes)
    oci_manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + config_hex, "size": len(config_bytes)},
        "layers": layer_descs}, separators=(",", ":")).encode()
    mhex = hashlib.sha256(oci_manifest).hexdigest()
    entries["blobs/sha256/" + mhex] = ("bytes", oci_manifest)
    tags = manifest.get("RepoTags") or []
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + mhex, "size": len(oci_manifest)}
    if tags:
        desc["annotations"] = {"io.containerd.image.name": tags[0],
                               "org.opencontainers.image.ref.name": tags[0].rpartition(":")[2]}
    entries["index.json"] = ("bytes", json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [desc]}, separators=(",", ":")).encode())
    entries["manifest.json"] = ("bytes", json.dumps([{
        "Config": "blobs/sha256/" + config_hex, "RepoTags": tags,
        "Layers": ["blobs/sha256/" + d.split(":", 1)[1] for d in diff_ids]}],
        separators=(",", ":")).encode())
    entries["oci-layout"] = ("bytes", b'{"imageLayoutVersion": "1.0.0"}')
    repos = {}
    for t in tags:
        repo, _, tag = t.rpartition(":")
        repos.setdefault(repo, {})[tag] = diff_ids[-1].split(":", 1)[1]
    entries["repositories"] = ("bytes", json.dumps(repos, separators=(",", ":")).encode())
    return entries


def write_docker_layout(src, dst, layout):
    """Writes the image in podman docker-archive `src` to `dst` in docker save layout `layout`:
    "podman" (a copy), "pre25" or "docker25". Returns dst."""
    if layout == "podman":
        shutil.copyfile(src, dst)
        return dst
    makers = {"pre25": _write_pre25, "docker25": _write_docker25}
    if layout not in makers:
        raise ValueError(f"unknown docker save layout {layout!r}")
    tf, manifest, config_bytes = _podman_archive_parts(src)
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as out:
        entries = makers[layout](tf, manifest, config_bytes, out)
        for name in sorted(entries):
            kind, value = entries[name]
            if kind == "dir":
                _add_dir(out, name.rstrip("/"))
            elif kind == "bytes":
                _add_bytes(out, name, value)
            else:
                _add_member_as(out, tf, value, name)
    tf.close()
    return dst
