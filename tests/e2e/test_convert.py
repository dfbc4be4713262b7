"""edgeslim convert against real tools: an image made by `podman import` of a small tarball built
here, saved by podman as docker-archive and oci-archive and copied by skopeo to an oci: layout, is
converted docker-archive -> oci -> oci-archive -> docker-archive with each layer compression;
skopeo must read every output, podman load must accept the archives and report the same diff_ids,
and the same input must give the same bytes. Hostile input must fail cleanly, leaving nothing.
"""
import io
import json
import os
import shutil
import tarfile
import tempfile

import pytest

from conftest import (PodmanStorage, leftovers, run, run_es, run_es_json, sha256_file, sha256_tree,
                      skopeo_inspect)

MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def make_rootfs_tar(path):
    """A small root filesystem: directories, files, a symlink, an executable."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        def add(name, data=None, mode=0o644, kind=tarfile.REGTYPE, link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, 1700000000, link
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
        add("etc", kind=tarfile.DIRTYPE, mode=0o755)
        add("etc/hostname", b"edgeslim-convert\n")
        add("etc/os-release", b"NAME=convert-test\n" * 50)
        add("bin", kind=tarfile.DIRTYPE, mode=0o755)
        add("bin/hello", b"#!/bin/sh\necho hello\n", mode=0o755)
        add("bin/hi", kind=tarfile.SYMTYPE, link="hello")
        add("data", kind=tarfile.DIRTYPE, mode=0o755)
        add("data/blob.bin", os.urandom(1 << 16))


def short_storage():
    """A private podman storage under a short path (podman limits runroot to 50 characters)."""
    base = tempfile.mkdtemp(prefix="esconv", dir="/tmp")
    return PodmanStorage(base), base


def drop_storage(storage, base):
    storage.cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """Source images: docker-archive and oci-archive from podman save, an oci: dir from skopeo."""
    d = tmp_path_factory.mktemp("convert-src")
    storage, base = short_storage()
    rootfs = d / "rootfs.tar"
    make_rootfs_tar(rootfs)
    storage("import", "--change", "CMD=/bin/hello", str(rootfs), "localhost/convert-test:1")
    storage("save", "--format", "docker-archive", "-o", str(d / "da.tar"), "localhost/convert-test:1")
    storage("save", "--format", "oci-archive", "-o", str(d / "oa.tar"), "localhost/convert-test:1")
    run(["skopeo", "copy", "--quiet", f"docker-archive:{d / 'da.tar'}", f"oci:{d / 'ocidir'}:latest"])
    diff_ids = storage.rootfs_layers("localhost/convert-test:1")
    config_digest = "sha256:" + storage("image", "inspect", "--format", "{{.Id}}",
                                        "localhost/convert-test:1").stdout.decode().strip()
    drop_storage(storage, base)
    return {"dir": d, "diff_ids": diff_ids, "config_digest": config_digest}


def load_layers(archive):
    storage, base = short_storage()
    try:
        refs = storage.load(archive)
        return storage.rootfs_layers(refs[0])
    finally:
        drop_storage(storage, base)


@pytest.mark.parametrize("comp", ["gzip", "zstd", "none"])
def test_chain_through_every_transport(src, tmp_path, comp):
    da = src["dir"] / "da.tar"
    oci = tmp_path / "oci"
    oa = tmp_path / "out-oci.tar"
    da2 = tmp_path / "out-docker.tar"

    r1 = run_es_json("convert", f"docker-archive:{da}", f"oci:{oci}:t1", "--compress", comp)
    r2 = run_es_json("convert", f"oci:{oci}:t1", f"oci-archive:{oa}:t2", "--compress", comp)
    r3 = run_es_json("convert", f"oci-archive:{oa}", f"docker-archive:{da2}:localhost/conv:{comp}",
                     "--compress", comp)
    for r in (r1, r2, r3):
        assert r["config_digest"] == src["config_digest"], "the config (image ID) must be kept"
        assert [l["diff_id"] for l in r["layers"]] == src["diff_ids"]
        assert all(l["compression"] == comp for l in r["layers"])
    # the second and third steps copy layers already in the right compression
    assert all(l["copied"] for l in r2["layers"] + r3["layers"])
    assert r2["manifest_digest"] == r1["manifest_digest"]

    # skopeo reads all three outputs; the manifest says what compression the layers have
    raw = skopeo_inspect(f"oci:{oci}:t1", raw=True)
    assert [l["mediaType"] for l in raw["layers"]] == [MEDIA[comp]] * len(src["diff_ids"])
    assert skopeo_inspect(f"oci-archive:{oa}:t2", raw=True) == raw
    cfg = skopeo_inspect(f"docker-archive:{da2}", config=True)
    assert cfg["rootfs"]["diff_ids"] == src["diff_ids"]
    assert skopeo_inspect(f"oci:{oci}:t1")["Layers"] == [l["digest"] for l in r1["layers"]]

    # podman load accepts our docker-archive and oci-archive and sees the same layers
    assert load_layers(str(da2)) == src["diff_ids"]
    assert load_layers(str(oa)) == src["diff_ids"]


@pytest.mark.parametrize("name,ref", [("oa.tar", "oci-archive:{}"), ("oa.tar", "{}"),
                                      ("ocidir", "oci:{}:latest"), ("ocidir", "{}"),
                                      ("da.tar", "{}")])
def test_reads_podman_and_skopeo_outputs(src, tmp_path, name, ref):
    out = tmp_path / "o.tar"
    r = run_es_json("convert", ref.format(src["dir"] / name), f"oci-archive:{out}")
    assert [l["diff_id"] for l in r["layers"]] == src["diff_ids"]
    assert r["config_digest"] == src["config_digest"]
    assert skopeo_inspect(f"oci-archive:{out}")["Digest"] == r["manifest_digest"]


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive", "oci"])
def test_same_input_same_bytes(src, tmp_path, kind):
    outs = []
    for i in range(2):
        p = tmp_path / f"det{i}"
        run_es("convert", f"docker-archive:{src['dir'] / 'da.tar'}", f"{kind}:{p}", "--compress", "gzip",
               env={"SOURCE_DATE_EPOCH": "1700000000"})
        outs.append(sha256_tree(p) if kind == "oci" else sha256_file(p))
    assert outs[0] == outs[1]


def test_text_output_and_help(src, tmp_path):
    out = tmp_path / "x.tar"
    p = run_es("convert", str(src["dir"] / "da.tar"), f"oci-archive:{out}", "--compress", "zstd")
    text = p.stdout.decode()
    assert "recompressed" in text and "manifest sha256:" in text
    assert p.stderr == b"", "no progress bar when stderr is not a terminal"
    h = run_es("convert", "--help")
    assert b"--compress" in h.stdout
    bad = run_es("convert", "a", "b", "--compress", "lzma", check=False)
    assert bad.returncode == 2
    missing = run_es("convert", str(tmp_path / "nope.tar"), f"oci:{tmp_path / 'o'}", check=False)
    assert missing.returncode == 3 and b"nope.tar" in missing.stderr


def corrupt_layer(src_tar, dst_tar):
    """Copy of a docker-archive with one byte of the layer file flipped (same size)."""
    with tarfile.open(src_tar) as t_in, tarfile.open(dst_tar, "w") as t_out:
        manifest = json.load(t_in.extractfile("manifest.json"))
        layer = manifest[0]["Layers"][0]
        for m in t_in.getmembers():
            data = t_in.extractfile(m).read() if m.isfile() else None
            if m.name == layer:
                data = bytearray(data)
                data[len(data) - 100] ^= 0xFF
                data = bytes(data)
            t_out.addfile(m, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize("comp", ["none", "gzip"])
def test_corrupt_layer_fails_and_leaves_nothing(src, tmp_path, comp):
    bad = tmp_path / "bad.tar"
    corrupt_layer(src["dir"] / "da.tar", bad)
    outdir = tmp_path / "out"
    outdir.mkdir()
    for dst in (f"oci:{outdir / 'oci'}", f"oci-archive:{outdir / 'a.tar'}",
                f"docker-archive:{outdir / 'd.tar'}"):
        p = run_es("convert", f"docker-archive:{bad}", dst, "--compress", comp, check=False)
        assert p.returncode == 5, p.stderr
        err = p.stderr.decode()
        assert "digest mismatch" in err and "bad.tar" in err and "layer 0" in err
        assert err.count("\n") == 1
        assert leftovers(str(outdir), set()) == []


def test_refuses_to_overwrite_a_foreign_directory(src, tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "file").write_text("keep")
    p = run_es("convert", str(src["dir"] / "da.tar"), f"oci:{d}", check=False)
    assert p.returncode == 3
    assert (d / "file").read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["mine"]
