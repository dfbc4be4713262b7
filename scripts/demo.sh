#!/usr/bin/env bash
# `make demo`: builds a fat distro image from Debian's packages (the `fat` fixture: compiler,
# Python, curl, apt lists left in a layer; cached outside the repo after the first build) and
# shows what `edgeslim inspect` finds in it: the layer table, the waste and the attack surface.
# Usage: scripts/demo.sh BIN_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(cd "${1:-build/bin}" && pwd)"
ES="$BIN/edgeslim"
[ -x "$ES" ] || { echo "demo: $ES is not built (run make)" >&2; exit 1; }

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
heading() { printf '\n%s== %s%s\n%s\n' "$B" "$1" "$N" "$2"; }

heading "1. The demo image" \
"A typical fat image: Debian bookworm + gcc, make, python3, pip, curl, built with podman from
Debian's packages (first run: about 2-3 minutes; afterwards cached in ~/.cache/edgeslim)."
start=$(date +%s)
dir="$(bash scripts/fixtures.sh fat)"
image="docker-archive:$dir/docker.tar"
echo "image: $image ($(du -h "$dir/docker.tar" | cut -f1), ready in $(( $(date +%s) - start )) s)"

heading "2. edgeslim inspect" \
"Per layer: the command that made it, its size and file count; then dive's metrics (efficiency,
wasted bytes, user wasted %) and edgeslim's reclaimable bytes (bytes shadowed or deleted by later
layers, counted once); the largest files; packages; ELF files; and the attack surface (shells,
package managers, setuid files, capabilities, root user, exposed ports)."
"$ES" inspect "$image" --top 10

heading "3. The same as JSON for scripts and CI" \
"edgeslim inspect --json prints every figure above with stable field names (docs/inspect.md);
with --ci it exits non-zero when dive's .dive-ci gates fail. The headline figures:"
"$ES" inspect "$image" --json | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
def find(d, key):
    if isinstance(d, dict):
        if key in d: return d[key]
        for v in d.values():
            x = find(v, key)
            if x is not None: return x
    return None
for k in ("efficiency", "wasted_bytes", "user_wasted_percent", "reclaimable_bytes"):
    print("  %-20s %s" % (k, find(r, k)))
print("  %-20s %s" % ("layers", len(r.get("layers", []))))
'
