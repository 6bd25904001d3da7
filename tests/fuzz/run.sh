#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, -DSSC_FUZZ=ON, in their own build directory)
# and runs each one for a bounded time from its seed corpus (tests/fuzz/corpus/<target>, read
# only; what a run finds goes to a temporary directory), two at a time. Fails when a target
# crashes, leaks, hangs (one input over 10 s) or trips a sanitizer: the reproducer is kept and
# the command to replay it is printed. Prints each target's final coverage (cov = edges,
# ft = features) so that CI logs show what the run reached.
#
#   tests/fuzz/run.sh [--build-dir DIR] [--seconds N] [--jobs N] [--no-build] [--keep] [TARGET...]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${SSC_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=30
jobs=2
do_build=1
keep=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if [ "$do_build" = 1 ]; then
  echo "== fuzz build ($build)"
  CC=${CC_FUZZ:-clang} cmake -S "$root" -B "$build" -DSSC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >/dev/null
  cmake --build "$build" --target fuzz -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
if [ ${#targets[@]} -eq 0 ]; then
  for src in "$root"/tests/fuzz/fuzz_*.c; do
    targets+=("$(basename "$src" .c)")
  done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sscard-fuzz.XXXXXX")
cleanup() { if [ "$keep" = 0 ] && [ -z "${failed:-}" ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

# One target: new units to $work/<t>/corpus, reproducers to $work/<t>/crash-*.
run_one() {
  local t=$1 bin="$build/tests/fuzz/$1" dict="$root/tests/fuzz/dict/$1.dict"
  local dir="$work/$t" args=()
  mkdir -p "$dir/corpus" "$dir/tmp"
  [ -f "$dict" ] && args+=("-dict=$dict")
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
  TMPDIR="$dir/tmp" \
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$dir/" "${args[@]}" "$dir/corpus" "$root/tests/fuzz/corpus/$t" \
      >"$dir/log" 2>&1
}

declare -A pid_of
status=0
running=0
for t in "${targets[@]}"; do
  if [ ! -x "$build/tests/fuzz/$t" ]; then
    echo "run.sh: no $build/tests/fuzz/$t (build first)" >&2
    exit 2
  fi
  run_one "$t" &
  pid_of[$t]=$!
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done

echo "== fuzz ($seconds s per target)"
for t in "${targets[@]}"; do
  rc=0
  wait "${pid_of[$t]}" || rc=$?
  log="$work/$t/log"
  stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+/runs \1 /' || true)
  seeds=$(find "$root/tests/fuzz/corpus/$t" -type f | wc -l)
  found=$(find "$work/$t/corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ] && ! ls "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/timeout-* \
       "$work/$t"/oom-* >/dev/null 2>&1; then
    printf '%-18s ok    seeds %4d new %4d  %s\n' "$t" "$seeds" "$found" "$stats"
  else
    status=1
    failed=1
    printf '%-18s FAIL  (exit %d)\n' "$t" "$rc"
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==|#[0-9]+ 0x' "$log" | head -40 | sed 's/^/    /'
    for a in "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/timeout-* "$work/$t"/oom-*; do
      [ -e "$a" ] || continue
      echo "    reproducer: $a"
      echo "    replay:     $build/tests/fuzz/$t $a"
    done
  fi
done
if [ "$status" -ne 0 ]; then
  echo "run.sh: a fuzz target failed; logs and reproducers are kept in $work" >&2
fi
exit "$status"
