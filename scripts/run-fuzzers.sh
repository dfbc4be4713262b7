#!/usr/bin/env bash
# Runs every libFuzzer target in DIR for SECONDS each, seeded from tests/fuzz/corpus/<name>/.
# A crash, leak or timeout fails the run; the reproducer is left in build-fuzz/artifacts/.
set -euo pipefail
dir=$1; secs=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
art="$root/build-fuzz/artifacts"; mkdir -p "$art"
n=0
for f in "$dir"/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  work=$(mktemp -d)
  seeds=()
  [ -d "$root/tests/fuzz/corpus/$name" ] && seeds=("$root/tests/fuzz/corpus/$name")
  echo "fuzz: $name for ${secs}s"
  "$f" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$art/$name-" \
       "$work" "${seeds[@]}" >"$work.log" 2>&1 || { tail -40 "$work.log"; echo "fuzz: $name FAILED"; exit 1; }
  grep -E '^(Done|#[0-9]+ *DONE)' "$work.log" | tail -1 || true
  rm -rf "$work" "$work.log"
  n=$((n+1))
done
echo "fuzz: $n targets ran clean"
