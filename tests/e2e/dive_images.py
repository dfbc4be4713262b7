"""Crafted multi-layer images for tests/e2e/test_inspect.py, built byte by byte with tarfile so
that every layer's exact content (and so every expected metric) is known: no podman involved.

A layer is a list of entries:
    ("f", path, data_or_size, mode=0o644, xattrs=None)   regular file (int size -> that many b"x")
    ("d", path, mode=0o755)                               directory
    ("l", path, target)                                   symlink
    ("wh", path)                                          whiteout of path (".wh.<name>")
    ("opq", dir)                                          opaque marker "<dir>/.wh..wh..opq"
write_image(dest, layers, fmt, config=None, compress=...) writes an OCI layout ("oci"), an
oci-archive ("oci-archive") or a podman/skopeo-style docker-archive ("docker-archive") and
returns the reference to pass to edgeslim.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _info(name, kind, mode):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, 0, 0, 0
    return ti


def layer_tar(entries):
    """The uncompressed tar of one layer (PAX format, entries in the given order)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            kind, path = e[0], e[1]
            if kind == "f":
                data = e[2] if isinstance(e[2], bytes) else b"x" * e[2]
                ti = _info(path, tarfile.REGTYPE, e[3] if len(e) > 3 else 0o644)
                if len(e) > 4 and e[4]:
                    # binary xattr values travel as surrogate-escaped str (hdrcharset=BINARY)
                    ti.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                                      for k, v in e[4].items()}
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            elif kind == "d":
                tf.addfile(_info(path, tarfile.DIRTYPE, e[2] if len(e) > 2 else 0o755))
            elif kind == "l":
                ti = _info(path, tarfile.SYMTYPE, 0o777)
                ti.linkname = e[2]
                tf.addfile(ti)
            elif kind == "wh":
                head, _, name = path.rpartition("/")
                tf.addfile(_info((head + "/" if head else "") + ".wh." + name, tarfile.REGTYPE, 0o644))
            elif kind == "opq":
                tf.addfile(_info(path + "/.wh..wh..opq", tarfile.REGTYPE, 0o644))
            else:
                raise ValueError(f"unknown entry kind {kind!r}")
    return buf.getvalue()


def default_config(diff_ids, created_by=None, user="", ports=None):
    history = []
    for i in range(len(diff_ids)):
        history.append({"created_by": created_by[i] if created_by else f"crafted layer {i + 1}"})
        history.append({"created_by": f"ENV STEP={i + 1}", "empty_layer": True})
    cfg = {"User": user, "Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]}
    if ports:
        cfg["ExposedPorts"] = {p: {} for p in ports}
    return {"architecture": "amd64", "os": "linux", "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}


def _blobs(layers, compress, config):
    tars = [layer_tar(l) for l in layers]
    blobs = [gzip.compress(t, mtime=0) if compress == "gzip" else t for t in tars]
    diff_ids = [_digest(t) for t in tars]
    cfg = config(diff_ids) if callable(config) else (config or default_config(diff_ids))
    cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return tars, blobs, _json(cfg)


def _put(dest, data):
    os.makedirs(os.path.join(dest, "blobs", "sha256"), exist_ok=True)
    d = _digest(data)
    with open(os.path.join(dest, "blobs", "sha256", d.split(":")[1]), "wb") as f:
        f.write(data)
    return d


def _put_manifest(dest, blobs, config_bytes, compress):
    mt = LAYER_GZIP if compress == "gzip" else LAYER_TAR
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": _put(dest, config_bytes),
                           "size": len(config_bytes)},
                "layers": [{"mediaType": mt, "digest": _put(dest, b), "size": len(b)} for b in blobs]}
    mb = _json(manifest)
    return {"mediaType": OCI_MANIFEST, "digest": _put(dest, mb), "size": len(mb)}


def _write_index(dest, descriptors):
    with open(os.path.join(dest, "index.json"), "wb") as f:
        f.write(_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}))
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


def _write_oci(dest, blobs, config_bytes, compress):
    desc = _put_manifest(dest, blobs, config_bytes, compress)
    desc["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    _write_index(dest, [desc])


def write_multiplatform(dest, per_platform):
    """An OCI layout whose index lists one manifest per platform: {"linux/arm64": layers, ...}.
    Each config carries its own os/architecture. Returns the oci: reference."""
    descs = []
    for plat, layers in per_platform.items():
        os_name, arch = plat.split("/")[:2]

        def cfg(ids, os_name=os_name, arch=arch):
            c = default_config(ids)
            c["os"], c["architecture"] = os_name, arch
            return c

        _, blobs, config_bytes = _blobs(layers, "gzip", cfg)
        desc = _put_manifest(dest, blobs, config_bytes, "gzip")
        desc["platform"] = {"os": os_name, "architecture": arch}
        descs.append(desc)
    _write_index(dest, descs)
    return f"oci:{dest}"


def _add(tf, name, data):
    ti = _info(name, tarfile.REGTYPE, 0o644)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def _tar_dir(src, dest):
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for root, dirs, files in sorted(os.walk(src)):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                with open(full, "rb") as f:
                    _add(tf, os.path.relpath(full, src), f.read())


def _write_docker_archive(dest, tars, config_bytes):
    """podman/skopeo layout: <diffid-hex>.tar layers, <config-hex>.json, manifest.json."""
    cfg_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    names = [hashlib.sha256(t).hexdigest() + ".tar" for t in tars]
    manifest = [{"Config": cfg_name, "RepoTags": ["localhost/crafted:latest"], "Layers": names}]
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        _add(tf, cfg_name, config_bytes)
        for name, t in zip(names, tars):
            _add(tf, name, t)
        _add(tf, "manifest.json", _json(manifest))


def write_image(dest, layers, fmt="oci", config=None, compress="gzip"):
    """Writes the image and returns the edgeslim reference for it."""
    tars, blobs, config_bytes = _blobs(layers, compress if fmt != "docker-archive" else "none", config)
    if fmt == "oci":
        _write_oci(dest, blobs, config_bytes, compress)
        return f"oci:{dest}"
    if fmt == "oci-archive":
        _write_oci(dest + ".d", blobs, config_bytes, compress)
        _tar_dir(dest + ".d", dest)
        return f"oci-archive:{dest}"
    if fmt == "docker-archive":
        _write_docker_archive(dest, tars, config_bytes)
        return f"docker-archive:{dest}"
    raise ValueError(f"unknown format {fmt!r}")


# ------------------------------------------------------------------ the crafted images
# dive's own example (filetree/efficiency_test.go): no directory entries, so /etc/nginx is only an
# implied directory and its whiteout weighs 0 -> efficiency exactly 0.75.
DIVE_EXAMPLE = [
    [("f", "etc/nginx/nginx.conf", 2000), ("f", "etc/nginx/public", 3000)],
    [("f", "etc/nginx/nginx.conf", 5000), ("f", "etc/athing", 10000)],
    [("wh", "etc/nginx")],
]
DIVE_EXAMPLE_EXPECT = {"efficiency": 0.75, "wasted_bytes": 7000,
                       "user_wasted_percent": 7000 / 15000, "reclaimable_bytes": 10000,
                       "layer_sizes": [5000, 15000, 0]}

# Every kind of waste at once, with directory entries as real builders write them.
#   L1: a/f 1000, a/d/{x 2000, sub/y 3000}, a/o/{p 4000, q 500}, a/g 100, a/t 10   (size 10610)
#   L2: a/f 1500 (overwrite), delete a/g (file), delete a/d (dir), a/t 20           (size 1520)
#   L3: a/o made opaque, a/o/r 600, a/t 30                                           (size 630)
# dive, per path (cumulative / min): f 2500/1000, d/x 2000, d/sub/y 3000, o/p 4000, o/q 500,
#   g 100/0 (file whiteout weighs 0), t 60/10, d 5000/5000 (whiteout of a dir: its subtree),
#   o/r 600. min sum 16110, cumulative 17760 -> efficiency 16110/17760.
#   wasted = f 2500 + g 100 + t 60 = 2660; user bytes 1520+630 = 2150.
# reclaimable = all file bytes 12760 - final files (f 1500, o/r 600, t 30) = 10630: f 1000, d/x,
#   d/sub/y, o/p and o/q (hidden by the opaque marker, invisible to dive), g 100, t 10+20.
WASTE = [
    [("d", "a"), ("f", "a/f", 1000), ("d", "a/d"), ("f", "a/d/x", 2000), ("d", "a/d/sub"),
     ("f", "a/d/sub/y", 3000), ("d", "a/o"), ("f", "a/o/p", 4000), ("f", "a/o/q", 500),
     ("f", "a/g", 100), ("f", "a/t", 10)],
    [("d", "a"), ("f", "a/f", 1500), ("wh", "a/g"), ("wh", "a/d"), ("f", "a/t", 20)],
    [("d", "a"), ("d", "a/o"), ("opq", "a/o"), ("f", "a/o/r", 600), ("f", "a/t", 30)],
]
WASTE_EXPECT = {"efficiency": 16110 / 17760, "wasted_bytes": 2660,
                "user_wasted_percent": 2660 / 2150, "reclaimable_bytes": 10630,
                "layer_sizes": [10610, 1520, 630], "final_files": 3, "final_size": 2130}


def read_host(path):
    with open(path, "rb") as f:
        return f.read()


DPKG_OLD = b"Package: tool\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\nInstalled-Size: 10\n"
DPKG_NEW = (b"Package: tool\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.0\nInstalled-Size: 20\n\n"
            b"Package: libfoo\nStatus: install ok installed\nArchitecture: amd64\nVersion: 0.5-1\nInstalled-Size: 3\n")
APK_DB = b"P:musl\nV:1.2.4-r2\nA:x86_64\nI:622592\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\nI:950272\n"
# security.capability v2: cap_net_bind_service (bit 10), effective
CAP_NET_BIND = bytes([0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])


def surface_layers():
    """An image with things the attack-surface, package and ELF sections must find."""
    ls = read_host("/bin/ls")
    return [
        [("d", "bin"), ("f", "bin/ls", ls, 0o755), ("f", "bin/dash", 100, 0o755), ("l", "bin/sh", "dash"),
         ("d", "usr"), ("d", "usr/bin"), ("f", "usr/bin/apt-get", 50, 0o755),
         ("f", "usr/bin/passwd", 60, 0o4755), ("f", "usr/bin/wall", 70, 0o2755),
         ("f", "usr/bin/ping", 80, 0o755, {"security.capability": CAP_NET_BIND}),
         ("d", "tmp", 0o1777), ("d", "var"), ("d", "var/drop", 0o777), ("f", "var/log.txt", 5, 0o666),
         ("d", "var/lib"), ("d", "var/lib/dpkg"), ("f", "var/lib/dpkg/status", DPKG_OLD),
         ("d", "lib"), ("d", "lib/apk"), ("d", "lib/apk/db"), ("f", "lib/apk/db/installed", APK_DB)],
        [("d", "var"), ("d", "var/lib"), ("d", "var/lib/dpkg"), ("f", "var/lib/dpkg/status", DPKG_NEW),
         ("d", "usr"), ("d", "usr/bin"), ("wh", "usr/bin/apt-get")],
    ]
