#!/usr/bin/env bash
# Builds the Debian package of sscard (debian/, debhelper compat 13) from the working tree into
# OUTDIR and checks it with lintian (--fail-on error). The tree is copied first (without build
# directories and .git), so that the build leaves nothing behind in it. Needs the build
# dependencies of debian/control (scripts/deps.sh installs them) and dpkg-dev, lintian.
#
#   ./scripts/package.sh OUTDIR
#
# Prints the path of the .deb on its last line. Environment: SSC_PACKAGE_JOBS (default nproc).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/sscard-package.XXXXXX)
trap 'rm -rf "$work"' EXIT

src="$work/sscard"
mkdir -p "$src"
# The tree as it is (tracked and new files), without build output.
tar -C "$root" --exclude=./.git --exclude='./build*' --exclude='./debian/sscard' \
    --exclude='./debian/.debhelper' --exclude='./obj-*' -cf - . | tar -C "$src" -xf -

jobs=${SSC_PACKAGE_JOBS:-$(nproc 2>/dev/null || echo 2)}
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$jobs nocheck noddebs" \
   dpkg-buildpackage -us -uc -b --no-sign >"$work/build.log" 2>&1) || {
  tail -60 "$work/build.log" >&2
  echo "package.sh: dpkg-buildpackage failed (log above)" >&2
  exit 1
}
debs=("$work"/sscard_*.deb)
cp "$work"/sscard_*.deb "$work"/sscard_*.changes "$work"/sscard_*.buildinfo "$out"/
deb="$out/$(basename "${debs[0]}")"
changes=$(ls "$out"/sscard_*.changes | head -1)
echo "== lintian" >&2
lintian --fail-on error --info "$changes" >&2
echo "$deb"
