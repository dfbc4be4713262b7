#!/usr/bin/env bash
# `make bench`: side-by-side benchmarks, in one run:
#   1. bench/bench.py: edgeslim unpack/convert/inspect vs umoci, skopeo and the zcat floor on the
#      fixture images (built on demand); --update rewrites the results section of BENCHMARKS.md
#   2. bench/slim.py: edgeslim slim per fixture: podman-measured reduction and wall time
#   3. bench/agent/bench_agent.py: edgeagent image size, footprint, readiness and durable ingest
#      beside mosquitto and collectd (BENCH_AGENT=0 skips it; --quick, 10 s memory samples,
#      unless BENCH_AGENT_FULL=1: 60 s samples as published in BENCHMARKS.md)
# Usage: bench/run-all.sh BIN_DIR [--update]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-build/bin}"
/usr/bin/python3 "$here/bench.py" "$bin" "${@:2}"
echo
echo "## slim"
/usr/bin/python3 "$here/slim.py" "$bin"
if [ "${BENCH_AGENT:-1}" = 1 ]; then
  echo
  echo "## edgeagent"
  quick=--quick
  [ "${BENCH_AGENT_FULL:-0}" = 1 ] && quick=
  /usr/bin/python3 "$here/agent/bench_agent.py" "$bin" $quick
fi
