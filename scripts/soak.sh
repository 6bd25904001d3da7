#!/usr/bin/env bash
# Runs the simulated desk day (tests/soak/desk_day.py, issue 18) for as long as asked: a private
# pcscd with 10 vpcd readers, the eleven simulated cards pulled, inserted, swapped and pulled in
# the middle of operations, pcscd restarted, sscardd SIGKILLed and restarted, the simulated key
# server failing and coming back, and 50 clients; the invariants (docs/performance.md, "The
# simulated desk day") are checked throughout and at the end. Prints one summary line and exits 1
# on any violation (the run's directory is then kept and its logs printed). The test command runs
# the same for 2 minutes (ctest soak.desk_day). Needs root for the namespaces, like the end-to-end
# tests; re-runs itself under sudo otherwise.
#
#   ./scripts/soak.sh [--minutes N] [--seed S] [--asan]
#     --minutes N  how long the chaos lasts (default 30); settling and the checks take a few more
#     --seed S     repeat a run's random choices (the summary line names its seed)
#     --asan       build and run the AddressSanitizer + UBSan build (build-asan/) instead
#
# Environment: SSC_BUILD_DIR (default build/), SSC_ASAN_BUILD_DIR (build-asan/).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/as-root.sh"
as_root "SSC_BUILD_DIR,SSC_ASAN_BUILD_DIR" "$0" "$@"

minutes=30
seed=()
asan=0
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) minutes=${2:?--minutes needs a number}; shift 2 ;;
    --seed) seed=(--seed "${2:?--seed needs a number}"); shift 2 ;;
    --asan) asan=1; shift ;;
    *) echo "soak.sh: unknown argument $1 (see the head of $0)" >&2; exit 2 ;;
  esac
done

"$root/scripts/deps.sh"
if [ "$asan" = 1 ]; then
  build=${SSC_ASAN_BUILD_DIR:-$root/build-asan}
  sanitize=ON
  export ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=1:halt_on_error=1:fast_unwind_on_malloc=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
else
  build=${SSC_BUILD_DIR:-$root/build}
  sanitize=OFF
fi
echo "== build ($build)"
cmake -S "$root" -B "$build" -DSSC_WERROR=ON -DSSC_SANITIZE="$sanitize" >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target sscardd sscardctl sscard-sim \
  >/dev/null
echo "== soak ($minutes min)"
SSC_BUILD_DIR=$build SSC_SOURCE_DIR=$root exec /usr/bin/python3 "$root/tests/soak/desk_day.py" \
  --minutes "$minutes" "${seed[@]}"
