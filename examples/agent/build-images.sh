#!/usr/bin/env bash
# Builds the agent the ways the seed describes and prints their sizes side by side:
#   full    single-stage, full OS (Containerfile.full)
#   slim    multi-stage, distro runtime (Containerfile.slim)
#   static  static binary on scratch (Containerfile.static)
#   full+edgeslim-slim / static+edgeslim-pack   when those edgeslim commands are built
# No registry is reachable, so every FROM is the fixtures' Debian base image (tests/e2e/fixtures.py,
# image("base")), loaded into podman as localhost/edgeslim-fixture-base:latest.
# Usage: examples/agent/build-images.sh [ES_BIN dir, default build/bin]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
es_bin=${1:-$root/build/bin}
work=$(mktemp -d /tmp/edgeagent-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

base_tar=$(cd "$root/tests/e2e" && /usr/bin/python3 -c 'import fixtures; print(fixtures.image("base"))')
if ! podman image exists localhost/edgeslim-fixture-base:latest; then
  id=$(podman load -q -i "$base_tar" | awk '/Loaded image/ {print $NF}')
  podman tag "$id" localhost/edgeslim-fixture-base:latest
fi

# build context: only what the agent build needs
mkdir -p "$work/ctx/src"
cp "$root/CMakeLists.txt" "$work/ctx/"
cp -r "$root/src/agent" "$work/ctx/src/"

build() { # name containerfile
  echo "building $1 ..." >&2
  podman build --isolation chroot --ulimit nofile=20000:20000 -q -t "localhost/edgeagent-$1:latest" \
    -f "$root/examples/agent/$2" "$work/ctx" >"$work/$1.log" 2>&1 || { tail -30 "$work/$1.log" >&2; return 1; }
}

sizes() { # image -> "uncompressed compressed" (bytes; compressed = gzip -6 of the saved layers)
  local img=$1 d
  d=$(mktemp -d "$work/save.XXXXXX")
  podman save --format docker-archive -o "$d/img.tar" "$img" >/dev/null 2>&1
  local raw comp=0
  raw=$(podman image inspect --format '{{.Size}}' "$img")
  tar -xf "$d/img.tar" -C "$d"
  for l in $(find "$d" -type f -name '*.tar' ! -name img.tar); do comp=$((comp + $(gzip -6 -n -c <"$l" | wc -c))); done
  rm -rf "$d"
  echo "$raw $comp"
}

build full Containerfile.full
build slim Containerfile.slim
build static Containerfile.static

rows=("full localhost/edgeagent-full:latest" "slim localhost/edgeagent-slim:latest" "static localhost/edgeagent-static:latest")
if [ -x "$es_bin/edgeslim" ] && "$es_bin/edgeslim" slim --help >/dev/null 2>&1; then
  podman save -q --format docker-archive -o "$work/full.tar" localhost/edgeagent-full:latest
  if "$es_bin/edgeslim" slim "docker-archive:$work/full.tar" -o "docker-archive:$work/full-slim.tar" \
       --probe http://127.0.0.1:8080/health >"$work/slim.log" 2>&1; then
    id=$(podman load -q -i "$work/full-slim.tar" | awk '/Loaded image/ {print $NF}')
    podman tag "$id" localhost/edgeagent-full-slimmed:latest && rows+=("full+edgeslim-slim localhost/edgeagent-full-slimmed:latest")
  else echo "edgeslim slim failed: $(tail -1 "$work/slim.log")" >&2; fi
fi
if [ -x "$es_bin/edgeslim" ] && "$es_bin/edgeslim" pack --help >/dev/null 2>&1; then
  podman create --name ea-extract localhost/edgeagent-static:latest >/dev/null
  podman cp ea-extract:/edgeagent "$work/edgeagent" && podman rm ea-extract >/dev/null
  if "$es_bin/edgeslim" pack "$work/edgeagent" --ca-certs --port 8080 \
       --entrypoint '["/usr/local/bin/edgeagent","--spool","/tmp/spool"]' -o "docker-archive:$work/packed.tar" >"$work/pack.log" 2>&1; then
    id=$(podman load -q -i "$work/packed.tar" | awk '/Loaded image/ {print $NF}')
    podman tag "$id" localhost/edgeagent-packed:latest && rows+=("static+edgeslim-pack localhost/edgeagent-packed:latest")
  else echo "edgeslim pack failed: $(tail -1 "$work/pack.log")" >&2; fi
fi

read -r full_raw full_comp < <(sizes localhost/edgeagent-full:latest)
printf '%-22s %14s %14s %10s\n' image uncompressed compressed "vs full"
for r in "${rows[@]}"; do
  set -- $r
  read -r raw comp < <(sizes "$2")
  printf '%-22s %14s %14s %9.2f%%\n' "$1" "$raw" "$comp" "$(echo "100 - 100 * $comp / $full_comp" | bc -l)"
done
