"""`edgeslim unpack` against `umoci unpack` (the reference OCI unpacker) on the same OCI layout:
the two root filesystems must be the same tree: paths, file types, permission bits (incl.
setuid/setgid/sticky), owners, symlink targets, device numbers, hardlink structure, the
security.capability xattr and the content (sha256) of every regular file. Differences are
listed path by path. The multilayer fixture's tree is also checked against what its recipe
says it must contain, for both tools (so a shared mistake cannot pass).
"""
import hashlib
import os
import stat

import pytest

import fixtures
from conftest import run, run_es

IMAGES = ["base", "nginx", "multilayer"]
MAX_REPORTED = 40


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe(path):
    """What we compare about one filesystem entry."""
    st = os.lstat(path)
    d = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
         "owner": (st.st_uid, st.st_gid)}
    if stat.S_ISLNK(st.st_mode):
        d["target"] = os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        d["size"] = st.st_size
        d["sha256"] = file_sha256(path)
        d["nlink"] = st.st_nlink
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        d["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    try:
        d["capability"] = os.getxattr(path, "security.capability", follow_symlinks=False).hex()
    except OSError:
        pass
    return d


def snapshot(root):
    """relative path -> description, for every entry below root (root itself excluded); plus
    hardlink groups as sets of paths sharing an inode."""
    entries, inodes = {}, {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            entries[rel] = describe(full)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                inodes.setdefault(st.st_ino, set()).add(rel)
    groups = sorted(tuple(sorted(g)) for g in inodes.values())
    return entries, groups


def differences(ref, got):
    """Human-readable differences between two snapshots (ref = umoci, got = edgeslim)."""
    (ra, rg), (ga, gg) = ref, got
    out = []
    for p in sorted(set(ra) - set(ga)):
        out.append(f"missing in edgeslim: {p} ({ra[p]['type']:o})")
    for p in sorted(set(ga) - set(ra)):
        out.append(f"extra in edgeslim: {p}")
    for p in sorted(set(ra) & set(ga)):
        for key in sorted(set(ra[p]) | set(ga[p])):
            if ra[p].get(key) != ga[p].get(key):
                out.append(f"{p}: {key} umoci={ra[p].get(key)!r} edgeslim={ga[p].get(key)!r}")
    if rg != gg:
        out.append(f"hardlink groups differ: umoci={rg[:5]} edgeslim={gg[:5]}")
    return out


@pytest.mark.parametrize("name", IMAGES)
def test_same_tree_as_umoci(name, tmp_path):
    layout = fixtures.image(name, "oci")
    bundle = tmp_path / "umoci-bundle"
    run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)])
    ours = tmp_path / "edgeslim-rootfs"
    run_es("unpack", f"oci:{layout}:latest", ours)

    ref, got = snapshot(str(bundle / "rootfs")), snapshot(str(ours))
    assert len(ref[0]) > 100, f"umoci unpacked only {len(ref[0])} entries: fixture broken?"
    diff = differences(ref, got)
    assert not diff, (f"{name}: {len(diff)} differences between umoci and edgeslim unpack:\n"
                      + "\n".join(diff[:MAX_REPORTED]))


def test_multilayer_tree_matches_recipe_for_both_tools(tmp_path):
    layout = fixtures.image("multilayer", "oci")
    bundle = tmp_path / "umoci-bundle"
    run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)])
    assert fixtures.check_multilayer_tree(str(bundle / "rootfs")) == [], "umoci disagrees with the recipe"
    ours = tmp_path / "edgeslim-rootfs"
    run_es("unpack", f"oci:{layout}:latest", ours)
    problems = fixtures.check_multilayer_tree(str(ours))
    assert not problems, "edgeslim unpack of multilayer:\n" + "\n".join(problems)
    # Whiteout markers are applied, never materialised.
    markers = [os.path.join(d, f) for d, ds, fs in os.walk(ours) for f in fs + ds if f.startswith(".wh.")]
    assert not markers, f"whiteout markers left in the tree: {markers[:5]}"
