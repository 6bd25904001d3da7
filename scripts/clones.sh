#!/usr/bin/env bash
# Counts the places in the product's C code where six or more lines repeat (issue 13: "at most 6
# places in src/ and drivers/"), the same way each time: jscpd 4.3.0 from npm (a copy-paste
# detector: token runs that are the same, or the same but for names and literals), at least 6
# lines, over src/, drivers/ and base/. Prints each clone (file [line:column - line:column], and
# the other place) and the summary table; exits 0 (it measures, it does not judge).
#
#   ./scripts/clones.sh            the clones and the count
#   ./scripts/clones.sh --json F   also jscpd's JSON report into the file F
#
# Needs node and npm (Debian 12: apt install npm); npx fetches jscpd into the npm cache the first
# time. Not run by ctest or CI: the last count and where its clones are is in docs/architecture.md
# ("Repeated code").
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
reporters=console
extra=()
if [ "${1:-}" = "--json" ] && [ -n "${2:-}" ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  reporters=console,json
  extra=(--output "$dir")
fi
npx --yes jscpd@4.3.0 --min-lines 6 --format c --reporters "$reporters" "${extra[@]}" \
  src drivers base 2>/dev/null
if [ "$reporters" = console,json ]; then
  cp "$dir/jscpd-report.json" "$2"
fi
