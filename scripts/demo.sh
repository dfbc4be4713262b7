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

# ---------------------------------------------------------------------------------------------
heading "4. edgeslim slim: a fat distro-based app image, minified and verified" \
"The flask-full fixture: a Flask app on a full toolchain image (how Python app images are usually
built). edgeslim runs it in its own sandbox under tracing while the probes run, keeps what the
app used (plus its static ELF closure and presets), hardens the result (nonroot, no shell, no
setuid, package DB and SBOM of what is left), then runs the probes on the original and the slim
image side by side and writes the image only if every probe still passes."
fdir="$(bash scripts/fixtures.sh flask-full)"
work="$(mktemp -d /tmp/edgeslim-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$ES" slim "docker-archive:$fdir/docker.tar" -o "docker-archive:$work/flask-slim.tar" \
    --probe http://127.0.0.1:8000/ --probe http://127.0.0.1:8000/greet/edge \
    --report "$work/report.json"

# ---------------------------------------------------------------------------------------------
heading "5. edgeagent in a tiny image" \
"The agent is one static binary. edgeslim pack puts it in a scratch image with a CA bundle and
/etc/passwd (nonroot 65532); edgeslim run starts that image in the sandbox and we ask the agent
for /health."
strip -o "$work/edgeagent" "$BIN/edgeagent"
"$ES" pack "$work/edgeagent" --ca-certs --port 8080 \
    --entrypoint '["/usr/local/bin/edgeagent","--spool","/tmp/spool"]' \
    -o "docker-archive:$work/edgeagent.tar"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ES" run --net host "docker-archive:$work/edgeagent.tar" -- --port "$port" >"$work/agent.log" 2>&1 &
run_pid=$!
health=""
for _ in $(seq 1 100); do
    health=$(curl -sf "http://127.0.0.1:$port/health" 2>/dev/null) && break
    sleep 0.1
done
kill -INT "$run_pid" 2>/dev/null || true
wait "$run_pid" 2>/dev/null || true
if [ -n "$health" ]; then
    echo "GET /health -> $health"
else
    echo "the agent did not answer /health; its log:"; cat "$work/agent.log"; exit 1
fi

heading "6. The agent built the ways the seed describes" \
"Single-stage full OS, multi-stage with a distro runtime, static on scratch, the full-OS image
through edgeslim slim and the static binary through edgeslim pack (podman build --isolation
chroot, from the fixtures' Debian base; a few minutes the first time)."
if [ "${DEMO_SKIP_AGENT_IMAGES:-0}" = 1 ]; then
    echo "(skipped: DEMO_SKIP_AGENT_IMAGES=1)"
else
    bash examples/agent/build-images.sh "$BIN"
fi
