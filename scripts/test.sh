#!/usr/bin/env bash
# Runs sscard's whole test suite on a Debian 12 machine: installs what is missing, then
#   1. builds everything with warnings as errors and runs every unit and end-to-end test (real
#      pcscd + vpcd + the simulator + sscardd, each test in its own private namespaces), the run of
#      the daemon under valgrind included (tests/e2e/test_daemon_valgrind.py);
#   2. builds again with AddressSanitizer + UndefinedBehaviorSanitizer (-DSSC_SANITIZE=ON, in its
#      own build directory) and runs the whole suite again; any sanitizer report, from a test or
#      from any process a test started, fails the run;
#   3. builds the libFuzzer targets (clang) and runs each one for 30 s from its seed corpus
#      (tests/fuzz/run.sh); a crash fails the run;
#   4. builds the Debian package (scripts/package.sh: debhelper, lintian) and installs, upgrades,
#      removes and purges it in an mmdebstrap chroot (the ctest label "package", which steps 1 and
#      2 leave out: tests/package/test_package.py).
# A failing step does not stop the later ones (a build failure does); the run ends with the time
# of each step and the list of what failed. --quick does step 1 only (for developers); --package
# builds (step 1's build) and runs step 4 only. Needs root
# for the namespaces; re-runs itself under sudo otherwise. Extra arguments go to ctest
# (e.g. -R e2e.test_daemon_read).
#
#   ./scripts/test.sh [--quick | --package] [ctest args...]
#
# Environment: SSC_BUILD_DIR (default build/), SSC_ASAN_BUILD_DIR (build-asan/), SSC_FUZZ_BUILD_DIR
# (build-fuzz/), SSC_FUZZ_SECONDS (per target, default 30), CTEST_ARGS.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/as-root.sh"
as_root "SSC_BUILD_DIR,SSC_ASAN_BUILD_DIR,SSC_FUZZ_BUILD_DIR,SSC_FUZZ_SECONDS,CTEST_ARGS" "$0" "$@"

quick=0
package_only=0
if [ "${1:-}" = "--quick" ]; then
  quick=1
  shift
elif [ "${1:-}" = "--package" ]; then
  package_only=1
  shift
fi

"$root/scripts/deps.sh"

build=${SSC_BUILD_DIR:-$root/build}
asan_build=${SSC_ASAN_BUILD_DIR:-$root/build-asan}
fuzz_build=${SSC_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=$(nproc 2>/dev/null || echo 2)
timings=()
t_start=$(date +%s)

# Runs "$@" and records how long it took under the label $1 (shift'ed off); returns its status.
timed() {
  local label=$1 t0 t1 rc=0
  shift
  t0=$(date +%s)
  "$@" || rc=$?
  t1=$(date +%s)
  timings+=("$(printf '%-28s %5d s' "$label" $((t1 - t0)))")
  return "$rc"
}

build_tree() {
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -DSSC_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

run_ctest() {
  # shellcheck disable=SC2086
  (cd "$1" && ctest --output-on-failure -j"$jobs" ${CTEST_ARGS:-} "${@:2}")
}

failed=()

# The times of the steps, what failed, and the exit status of the run.
finish() {
  echo "== times"
  printf '%s\n' "${timings[@]}"
  printf '%-28s %5d s\n' "total" $(($(date +%s) - t_start))
  if [ ${#failed[@]} -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    exit 1
  fi
  exit 0
}

echo "== build ($build)"
timed "build" build_tree "$build" -DSSC_SANITIZE=OFF
# The package step (step 4) is slow and runs once, on its own.
package_step() {
  echo "== package (build, lintian, mmdebstrap chroot)"
  timed "package + chroot" run_ctest "$build" -L package "$@" || failed+=("package")
}
if [ "$package_only" = 1 ]; then
  package_step "$@"
  finish
fi
echo "== tests"
timed "tests" run_ctest "$build" -LE package "$@" || failed+=("tests")

if [ "$quick" = 1 ]; then
  finish
fi

echo "== sanitizer build ($asan_build, ASan + UBSan)"
timed "sanitizer build" build_tree "$asan_build" -DSSC_SANITIZE=ON
echo "== tests under ASan + UBSan"
# A report fails the run even when it came from a process whose exit status no test looked at (a
# daemon's leak report at SIGTERM): the end-to-end tests keep their logs (every process's stderr)
# in a directory of this run, and the logs of the tests and of those processes are searched after.
# (ASan's log_path cannot be used: opening its file under umockdev's preload, in the USB tests,
# crashes at start-up.) umockdev's preload may come before ASan's runtime: verify_asan_link_order=0.
# One known report is not the product's: OpenSSL's per-thread random generator of umockdev's
# worker thread in the USB test runner (tests/usb/icc.c draws the simulated card's challenges on
# it), a thread umockdev does not join at exit. It is suppressed by the test file's name, which
# needs full stacks (fast_unwind_on_malloc=0: Debian's libcrypto has no frame pointers).
san_logs=$(mktemp -d /tmp/sscard-asan.XXXXXX)
chmod 0755 "$san_logs"    # tests connect to daemon sockets in here as another uid
printf '%s\n' 'leak:tests/usb/icc.c' >"$san_logs/lsan.supp"
asan_rc=0
ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=1:halt_on_error=1:fast_unwind_on_malloc=0" \
LSAN_OPTIONS="suppressions=$san_logs/lsan.supp:print_suppressions=0" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
SSC_E2E_TMPDIR="$san_logs" SSC_E2E_KEEP=1 \
  timed "tests under ASan + UBSan" run_ctest "$asan_build" -LE package "$@" || asan_rc=$?
san_pattern='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |SUMMARY: UndefinedBehaviorSanitizer'
if grep -rlE "$san_pattern" "$san_logs" "$asan_build/Testing/Temporary" >/dev/null 2>&1; then
  echo "sanitizer reports:" >&2
  grep -rE -A12 "$san_pattern" "$san_logs" "$asan_build/Testing/Temporary" | head -200 >&2
  asan_rc=1
fi
rm -rf "$san_logs"
if [ "$asan_rc" -ne 0 ]; then
  failed+=("tests under ASan + UBSan")
fi

echo "== fuzz targets ($fuzz_build)"
timed "fuzz build + runs" "$root/tests/fuzz/run.sh" --build-dir "$fuzz_build" \
  --seconds "${SSC_FUZZ_SECONDS:-30}" || failed+=("fuzz")

package_step "$@"

finish
