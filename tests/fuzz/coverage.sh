#!/usr/bin/env bash
# Source-based line and branch coverage of the files each fuzz target is meant to exercise,
# reached by its seed corpus (tests/fuzz/corpus/<target>) and, with --extra DIR, by what a fuzz run
# found (run.sh --keep leaves DIR/<target>/corpus). Builds the targets once more with clang's
# -fprofile-instr-generate -fcoverage-mapping (build-fuzzcov/), replays each corpus (-runs=0) and
# prints llvm-cov's report per target. Needs clang and llvm (llvm-profdata, llvm-cov). Not in CI.
#
#   tests/fuzz/coverage.sh [--build-dir DIR] [--extra RUNDIR] [--no-build] [TARGET...]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$root/build-fuzzcov
extra=""
do_build=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=${2:?}; shift 2 ;;
    --extra) extra=${2:?}; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "coverage.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
profdata=$(command -v llvm-profdata || command -v llvm-profdata-14)
llvmcov=$(command -v llvm-cov || command -v llvm-cov-14)

if [ "$do_build" = 1 ]; then
  CC=${CC_FUZZ:-clang} cmake -S "$root" -B "$build" -DSSC_FUZZ=ON \
    -DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
    -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" >/dev/null
  cmake --build "$build" --target fuzz -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
if [ ${#targets[@]} -eq 0 ]; then
  for src in "$root"/tests/fuzz/fuzz_*.c; do
    targets+=("$(basename "$src" .c)")
  done
fi

# The sources each target is for (what its coverage is reported on).
sources_of() {
  case "$1" in
    fuzz_rpc) echo src/rpc.c ;;
    fuzz_card) echo src/ops.c src/ssc.c src/apdu.c src/psam.c src/items.c ;;
    fuzz_items) echo src/items.c src/gbk.c ;;
    fuzz_tlv) echo src/apdu.c src/ssc.c ;;
    fuzz_ccid) echo drivers/usb-ccid/ccid.c drivers/usb-ccid/atr.c drivers/usb-ccid/t0.c \
                    drivers/usb-ccid/t1.c ;;
    fuzz_sim_apdu) echo firmware-stubs/src/cos/sim_token.c firmware-stubs/src/cos/sim_card.c \
                        firmware-stubs/src/cos/sim_psam.c firmware-stubs/src/cos/sim_apdu.c \
                        firmware-stubs/src/cos/sim_fs.c ;;
    fuzz_sim_profile) echo firmware-stubs/src/cos/sim_profile.c ;;
    *) echo "" ;;
  esac
}

work=$(mktemp -d "${TMPDIR:-/tmp}/sscard-fuzzcov.XXXXXX")
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  dirs=("$root/tests/fuzz/corpus/$t")
  if [ -n "$extra" ] && [ -d "$extra/$t/corpus" ]; then
    dirs+=("$extra/$t/corpus")
  fi
  mkdir -p "$work/$t/tmp"
  LLVM_PROFILE_FILE="$work/$t/%p.profraw" TMPDIR="$work/$t/tmp" \
    ASAN_OPTIONS=detect_leaks=0 "$build/tests/fuzz/$t" -runs=0 "${dirs[@]}" >"$work/$t/log" 2>&1 \
    || { echo "coverage.sh: $t failed on its corpus:"; tail -20 "$work/$t/log"; exit 1; }
  "$profdata" merge -sparse "$work/$t"/*.profraw -o "$work/$t.profdata"
  srcs=()
  for s in $(sources_of "$t"); do
    srcs+=("$root/$s")
  done
  echo "== $t (corpus: ${dirs[*]})"
  "$llvmcov" report "$build/tests/fuzz/$t" -instr-profile="$work/$t.profdata" "${srcs[@]}" \
    | sed -e "s|$root/||"
done
