"""Generators of hostile and broken images for tests/e2e/test_hostile.py.

Every generator starts from a small VALID image built here (tar layers made with tarfile,
written as an OCI layout, a podman-style docker-archive or an oci-archive) and breaks exactly
one thing, keeping every other digest and size consistent, so that the failure a reader reports
can only come from the thing that was broken. For example a truncated gzip layer gets a manifest
whose digest and size match the truncated blob: only decompression can notice.

Entry names that must appear in error messages contain the marker "evil".
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import zlib

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


# ------------------------------------------------------------------ tar layers
def tar_bytes(entries):
    """entries: dicts with name, type (file|dir|symlink|hardlink|chr|blk|fifo), data, target,
    mode, major, minor. Written in order, PAX format, owner 0, mtime 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.mtime, ti.uid, ti.gid = 0, 0, 0
            kind = e.get("type", "file")
            data = e.get("data", b"")
            ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                       "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                       "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            ti.mode = e.get("mode", 0o755 if kind == "dir" else 0o644)
            if kind in ("symlink", "hardlink"):
                ti.linkname = e["target"]
            if kind in ("chr", "blk"):
                ti.devmajor, ti.devminor = e.get("major", 1), e.get("minor", 3)
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def plain_layer():
    """An ordinary small layer: some directories and files with known content."""
    entries = [{"name": "etc", "type": "dir"}, {"name": "etc/hostname", "data": b"hostile\n"},
               {"name": "bin", "type": "dir"}]
    for i in range(40):  # ~400 KB so that truncations land inside file data
        entries.append({"name": f"bin/tool{i:02d}", "data": bytes((i + j) % 251 for j in range(10000)),
                        "mode": 0o755})
    return tar_bytes(entries)


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


class Layer:
    def __init__(self, tar, compress="gzip", blob=None):
        self.tar = tar
        self.diff_id = sha256(tar)
        if blob is not None:
            self.blob = blob
        else:
            self.blob = gz(tar) if compress == "gzip" else tar
        self.media_type = LAYER_GZIP if compress == "gzip" else LAYER_TAR


def base_config(diff_ids):
    return {"architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/tool00"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"hostile layer {i}"} for i in range(len(diff_ids))]}


# ------------------------------------------------------------------ OCI layout
class OciLayout:
    """A writable OCI image layout with one manifest, plus helpers to break it surgically."""

    def __init__(self, path, layers, config=None, ref="latest"):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        self.ref = ref
        self.layers = layers
        self.config = config if config is not None else base_config([l.diff_id for l in layers])
        for layer in layers:
            self.put_blob(layer.blob)
        self.config_bytes = dumps(self.config)
        self.put_blob(self.config_bytes)
        self.manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(self.config_bytes),
                       "size": len(self.config_bytes)},
            "layers": [{"mediaType": l.media_type, "digest": sha256(l.blob), "size": len(l.blob)}
                       for l in layers]}
        self.write_manifest()

    def blob_path(self, digest):
        return os.path.join(self.path, "blobs", *digest.split(":", 1))

    def put_blob(self, data):
        d = sha256(data)
        with open(self.blob_path(d), "wb") as f:
            f.write(data)
        return d

    def write_manifest(self, manifest_bytes=None, media_type=OCI_MANIFEST):
        """Stores the manifest (self.manifest, or raw bytes) and points index.json at it."""
        data = manifest_bytes if manifest_bytes is not None else dumps(self.manifest)
        d = self.put_blob(data)
        self.write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": media_type, "digest": d, "size": len(data),
             "annotations": {"org.opencontainers.image.ref.name": self.ref}}]})
        return d

    def write_index(self, index_obj_or_bytes):
        data = index_obj_or_bytes if isinstance(index_obj_or_bytes, bytes) else dumps(index_obj_or_bytes)
        with open(os.path.join(self.path, "index.json"), "wb") as f:
            f.write(data)

    def replace_config(self, config_bytes):
        """New config bytes, manifest updated to match (digest and size consistent)."""
        self.config_bytes = config_bytes
        d = self.put_blob(config_bytes)
        self.manifest["config"].update(digest=d, size=len(config_bytes))
        return self.write_manifest()

    def replace_layer_blob(self, i, blob, media_type=None):
        """New bytes for layer i, with the manifest's digest and size updated to match."""
        d = self.put_blob(blob)
        self.manifest["layers"][i].update(digest=d, size=len(blob))
        if media_type:
            self.manifest["layers"][i]["mediaType"] = media_type
        return self.write_manifest()

    def overwrite_blob_in_place(self, digest, data):
        """Changes a blob's bytes WITHOUT updating anything that names it (digest mismatch)."""
        with open(self.blob_path(digest), "wb") as f:
            f.write(data)

    def ref_string(self):
        return f"oci:{self.path}:{self.ref}"


def to_oci_archive(layout_dir, path):
    """Tar of an OCI layout directory (what `oci-archive:` reads)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("oci-layout", "index.json", "blobs"):
            tf.add(os.path.join(layout_dir, name), arcname=name)
    return path


def docker_archive(path, layers, config=None, manifest_first=True, tag="localhost/hostile:latest",
                   raw_manifest=None, drop_layer=None):
    """A podman-style docker-archive: `<diffid>.tar` layers, `<config>.json`, manifest.json."""
    config = config if config is not None else base_config([l.diff_id for l in layers])
    cfg = dumps(config)
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    names = [l.diff_id.split(":", 1)[1] + ".tar" for l in layers]
    manifest = raw_manifest if raw_manifest is not None else dumps(
        [{"Config": cfg_name, "RepoTags": [tag], "Layers": names}])
    files = [("manifest.json", manifest), (cfg_name, cfg)]
    files += [(n, l.tar) for i, (n, l) in enumerate(zip(names, layers)) if i != drop_layer]
    if not manifest_first:
        files = files[1:] + files[:1]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o444, 0
            tf.addfile(ti, io.BytesIO(data))
    return path


def truncate_file(path, keep_fraction=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep_fraction))
    return path


# ------------------------------------------------------------------ the bomb
def zero_bomb_layer(uncompressed_bytes=1 << 30):
    """A gzip layer holding one file of `uncompressed_bytes` zeros (1 GiB -> ~1 MB gzip).
    Built streaming; returns (blob, diff_id, tar_size)."""
    header = tarfile.TarInfo("zeros")
    header.size, header.mtime, header.mode = uncompressed_bytes, 0, 0o644
    head = header.tobuf(format=tarfile.PAX_FORMAT)
    pad = (512 - uncompressed_bytes % 512) % 512
    tail = b"\0" * pad + b"\0" * 1024
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip wrapper
    h = hashlib.sha256()
    out = [comp.compress(head)]
    h.update(head)
    chunk = b"\0" * (1 << 20)
    left = uncompressed_bytes
    while left:
        n = min(left, len(chunk))
        out.append(comp.compress(chunk[:n]))
        h.update(chunk[:n])
        left -= n
    out.append(comp.compress(tail))
    h.update(tail)
    out.append(comp.flush())
    return b"".join(out), "sha256:" + h.hexdigest(), len(head) + uncompressed_bytes + len(tail)


def copy_tree(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def cached_zero_bomb():
    """The 1 GiB-of-zeros gzip layer, built once per machine (several seconds) and kept in the
    fixture cache beside the fixture images. Returns (blob, diff_id)."""
    cache = os.environ.get("ES_FIXTURE_CACHE", os.path.expanduser("~/.cache/edgeslim/fixtures"))
    path = os.path.join(cache, "hostile-zero-bomb-1GiB.tar.gz")
    if not os.path.exists(path + ".diffid"):
        os.makedirs(cache, exist_ok=True)
        blob, diff_id, _ = zero_bomb_layer()
        for name, data in ((path, blob), (path + ".diffid", diff_id.encode())):
            with open(name + ".tmp", "wb") as f:
                f.write(data)
            os.replace(name + ".tmp", name)
    with open(path, "rb") as f, open(path + ".diffid") as g:
        return f.read(), g.read().strip()
