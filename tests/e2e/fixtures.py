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
Names: base nginx python static multilayer fat. The first call builds what is missing (minutes
from scratch; parallel callers wait on a lock instead of building twice).
"""
import os
import subprocess

SOURCE_DIR = os.environ.get(
    "ES_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
BUILDER = os.path.join(SOURCE_DIR, "scripts", "fixtures.sh")
NAMES = ("base", "nginx", "python", "static", "multilayer", "fat")
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
