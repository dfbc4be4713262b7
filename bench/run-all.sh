#!/usr/bin/env bash
# `make bench`: side-by-side benchmarks of edgeslim against umoci, skopeo and the floor on the
# fixture images (built on demand). Usage: bench/run-all.sh BIN_DIR [--update]
# (--update also rewrites the results section of BENCHMARKS.md). See bench/bench.py.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/bench.py" "${1:-build/bin}" "${@:2}"
