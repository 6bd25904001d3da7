#!/usr/bin/env bash
# Runs sscard's whole test suite on a Debian 12 machine: installs what is missing, builds everything
# with warnings as errors, and runs every unit and end-to-end test (real pcscd + vpcd + the simulator
# + sscardd, each test in its own private namespaces). Needs root for the namespaces; re-runs itself
# under sudo otherwise.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=SSC_BUILD_DIR,CTEST_ARGS "$0" "$@"
fi

"$root/scripts/deps.sh"

build=${SSC_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build ($build)"
cmake -S "$root" -B "$build" -DSSC_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"

echo "== tests"
cd "$build"
# shellcheck disable=SC2086
ctest --output-on-failure -j"$jobs" ${CTEST_ARGS:-} "$@"
