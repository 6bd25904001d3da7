#!/usr/bin/env bash
# Builds what the benchmark needs (sscardd, sscard-sim, sscard-bench; its own build directory,
# build-bench/, optimised as a release) and runs bench/run.py: a private pcscd + vpcd, simulated
# cards and PSAMs, sscardd, and the measuring clients; one line per figure (docs/performance.md).
# Needs root for the namespaces, like the end-to-end tests; re-runs itself under sudo otherwise.
#
#   ./scripts/bench.sh [--quick] [--one-cpu] [--traces] [--json FILE] [SECTION...]
#   sections: apdus latency delay throughput journal hsm (default: all)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/as-root.sh"
as_root "SSC_BENCH_BUILD_DIR" "$0" "$@"

"$root/scripts/deps.sh"
build=${SSC_BENCH_BUILD_DIR:-$root/build-bench}
echo "== build ($build)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSSC_SANITIZE=OFF >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target sscardd sscard-sim sscard-bench \
  >/dev/null
echo "== bench"
SSC_BUILD_DIR=$build exec /usr/bin/python3 "$root/bench/run.py" "$@"
