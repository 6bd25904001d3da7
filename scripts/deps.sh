#!/usr/bin/env bash
# Installs the Debian 12 packages that sscard needs to build, run its simulator demo and its tests.
# Safe to run again: it installs only what is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libpcsclite-dev pcscd libccid pcsc-tools
  libssl-dev libusb-1.0-0-dev libsqlite3-dev sqlite3 libuv1-dev libjansson-dev libinih-dev
  libcmocka-dev umockdev libumockdev-dev libglib2.0-dev
  vsmartcard-vpcd
  python3 python3-pyscard python3-venv
  iproute2 util-linux procps
  clang libclang-rt-14-dev valgrind
  systemd libmicrohttpd-dev
  scdoc man-db groff-base prometheus
  dpkg-dev debhelper lintian mmdebstrap
  libcurl4-openssl-dev libgnutls28-dev openssl
  libwebsockets-dev chromium chromium-driver python3-selenium fonts-wqy-microhei
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "sscard: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Installing pcscd on a machine without systemd starts no daemon, but check: a system pcscd would
# not disturb the tests (they run their own in private namespaces), it is only worth knowing.
if pgrep -x pcscd >/dev/null 2>&1; then
  echo "sscard: note: a system pcscd is running; the demo and tests use their own private one" >&2
fi
