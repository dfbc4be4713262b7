"""Transport round trips through `edgeslim convert`, checked by the real tools.

For each fixture image: docker-archive -> oci -> oci-archive -> docker-archive, every hop read back
by `skopeo inspect` (manifest and config), the final archive accepted by `podman load`, and the
image's diff_ids (RootFS layers) unchanged end to end against `podman image inspect` of the
original. Also: layer compression zstd and none (media types, blob magic, blob digests), byte-
identical output for the same input, and reading all three `docker save` layouts (podman's,
Docker before 25, Docker 25+) with inspect, unpack and convert.
"""
import json
import os

import pytest

import fixtures
from conftest import (host_rootfs_layers, leftovers, run, run_es, sha256_file, skopeo_inspect)

CHAIN_IMAGES = ["nginx", "python", "static", "multilayer"]
LAYER_MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}


def config_diff_ids(ref):
    return skopeo_inspect(ref, config=True)["rootfs"]["diff_ids"]


def oci_blob(layout, digest):
    return os.path.join(layout, "blobs", *digest.split(":", 1))


def oci_manifest(layout):
    """The single manifest of an OCI layout directory, read without our code."""
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    assert len(index["manifests"]) == 1, f"{layout}/index.json: {len(index['manifests'])} manifests"
    with open(oci_blob(layout, index["manifests"][0]["digest"])) as f:
        return json.load(f)


def check_oci_blobs(layout):
    """Every blob in an OCI layout hashes to its name (catches a writer that mislabels blobs)."""
    bad = []
    root = os.path.join(layout, "blobs", "sha256")
    for name in os.listdir(root):
        if sha256_file(os.path.join(root, name)) != name:
            bad.append(name)
    assert not bad, f"{layout}: blobs whose content does not match their digest: {bad}"


def convert(src, dst, *opts, env=None):
    run_es("convert", src, dst, *opts, env=env)


@pytest.mark.parametrize("name", CHAIN_IMAGES)
def test_chain_docker_oci_ociarchive_docker(name, tmp_path, podman_tmp):
    original = host_rootfs_layers(fixtures.podman_ref(name))
    original_config = skopeo_inspect(f"docker-archive:{fixtures.image(name)}", config=True)
    out = tmp_path / "out"
    out.mkdir()

    oci_dir = out / "hop1-oci"
    convert(f"docker-archive:{fixtures.image(name)}", f"oci:{oci_dir}:latest")
    assert config_diff_ids(f"oci:{oci_dir}:latest") == original, "hop 1 (oci) changed diff_ids"
    check_oci_blobs(str(oci_dir))

    oci_tar = out / "hop2.oci.tar"
    convert(f"oci:{oci_dir}:latest", f"oci-archive:{oci_tar}")
    assert config_diff_ids(f"oci-archive:{oci_tar}") == original, "hop 2 (oci-archive) changed diff_ids"

    docker_tar = out / "hop3.docker.tar"
    convert(f"oci-archive:{oci_tar}", f"docker-archive:{docker_tar}")
    final_config = skopeo_inspect(f"docker-archive:{docker_tar}", config=True)
    assert final_config["rootfs"]["diff_ids"] == original, "hop 3 (docker-archive) changed diff_ids"
    # The runtime config (entrypoint, cmd, env, ports, user, workdir) survives the trip.
    assert final_config.get("config") == original_config.get("config")
    assert final_config.get("architecture") == original_config.get("architecture")

    loaded = podman_tmp.load(str(docker_tar))
    assert podman_tmp.rootfs_layers(loaded[0]) == original, "podman load: RootFS differs"

    assert leftovers(out, []) == sorted(["hop1-oci", "hop2.oci.tar", "hop3.docker.tar"]), \
        "temporary files left beside the outputs"


@pytest.mark.parametrize("compress", ["zstd", "none", "gzip"])
def test_compression_choice(compress, tmp_path, podman_tmp):
    name = "multilayer"
    original = host_rootfs_layers(fixtures.podman_ref(name))
    oci_dir = tmp_path / f"oci-{compress}"
    convert(f"docker-archive:{fixtures.image(name)}", f"oci:{oci_dir}:latest", "--compress", compress)
    check_oci_blobs(str(oci_dir))
    manifest = oci_manifest(str(oci_dir))
    for layer in manifest["layers"]:
        assert layer["mediaType"] == LAYER_MEDIA[compress], f"--compress {compress}: {layer}"
        with open(oci_blob(str(oci_dir), layer["digest"]), "rb") as f:
            head = f.read(4)
        if compress in MAGIC:
            assert head.startswith(MAGIC[compress]), f"{layer['digest']}: not {compress} data"
        else:
            assert layer["digest"] in original, "an uncompressed layer's digest must be its diff_id"
        assert os.path.getsize(oci_blob(str(oci_dir), layer["digest"])) == layer["size"]
    assert config_diff_ids(f"oci:{oci_dir}:latest") == original
    # skopeo copy reads every blob and checks its digest while copying.
    run(["skopeo", "copy", "-q", f"oci:{oci_dir}:latest", f"dir:{tmp_path / 'skopeo-dir'}"])
    # Back to docker-archive (zstd cannot be named there: the writer must recompress or store
    # it). podman load is slow, and the chain test already loads gzip archives: zstd only.
    docker_tar = tmp_path / "back.docker.tar"
    convert(f"oci:{oci_dir}:latest", f"docker-archive:{docker_tar}")
    assert config_diff_ids(f"docker-archive:{docker_tar}") == original
    if compress == "zstd":
        assert podman_tmp.rootfs_layers(podman_tmp.load(str(docker_tar))[0]) == original


# oci-archive is a tar of the oci: layout, so the oci-archive case covers the layout's bytes too.
@pytest.mark.parametrize("dst_kind", ["oci-archive", "docker-archive"])
def test_same_input_gives_identical_bytes(dst_kind, tmp_path):
    src = f"docker-archive:{fixtures.image('multilayer')}"
    digests = []
    for i in range(2):
        out = tmp_path / f"out{i}"
        convert(src, f"{dst_kind}:{out}")
        digests.append(sha256_file(out))
    assert digests[0] == digests[1], f"{dst_kind}: two conversions of the same input differ"


@pytest.mark.parametrize("layout", ["podman", "pre25", "docker25"])
def test_docker_save_layouts(layout, tmp_path):
    name = "multilayer"
    original = host_rootfs_layers(fixtures.podman_ref(name))
    archive = fixtures.write_docker_layout(fixtures.image(name), str(tmp_path / f"{layout}.tar"), layout)

    info = run_es("inspect", archive, "--json")  # bare path: auto-detected as docker-archive
    report = json.loads(info.stdout)
    assert len(report["layers"]) == len(original), f"{layout}: inspect saw {len(report['layers'])} layers"

    root = tmp_path / "rootfs"
    run_es("unpack", f"docker-archive:{archive}", root)
    problems = fixtures.check_multilayer_tree(str(root))
    assert not problems, f"{layout}: unpacked tree wrong:\n" + "\n".join(problems)

    oci_dir = tmp_path / "oci"  # no recompression: this test is about reading the layout
    convert(f"docker-archive:{archive}", f"oci:{oci_dir}:latest", "--compress", "none")
    assert config_diff_ids(f"oci:{oci_dir}:latest") == original
    check_oci_blobs(str(oci_dir))
