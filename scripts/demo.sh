#!/usr/bin/env bash
# sscard demo: installs what is missing, builds, and reads a social security card through the API.
#
# When the machine's own pcscd shows a reader holding a card, it reads that card. Otherwise (no reader
# attached, or --simulate) it starts, in a private mount and network namespace, a private pcscd with
# the virtual reader driver vpcd, attaches the simulated card and PSAM (sscard-sim) to it, starts
# sscardd against that pcscd, and reads the card with `sscardctl read-basic`. Everything it started
# is stopped when it ends (or on Ctrl-C); --keep leaves it running and prints what runs (each
# process by name), the `export` lines for sscardctl, and how to remove and insert the simulated
# card (the simulators' control sockets).
#
# --web also starts the browser bridge sscard-web (as nobody, on 127.0.0.1:8732), leaves everything
# running and prints the demo page's URL and a pairing code (docs/web.md).
# --hsm (simulated only) gives the desk no PSAM reader: its keys come from the simulated province key
# server (sscard-sim hsm, spec §13.2) over TLS with a client certificate, all made by this script
# with the openssl command line; sscardd and the key server share the private network namespace.
#   ./scripts/demo.sh [--simulate] [--profile gen2|gen3|gen3-readauth|...] [--keep] [--json] [--web]
#                     [--hsm]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/as-root.sh"
as_root "" "$0" "$@"

profile=gen3-readauth
keep=0
json=""
simulate=0
web=0
web_port=8732
hsm=0
hsm_port=8443
while [ $# -gt 0 ]; do
  case "$1" in
    --simulate) simulate=1; shift ;;
    --profile) profile=${2:?--profile needs a name}; simulate=1; shift 2 ;;
    --keep) keep=1; shift ;;
    --json) json=--json; shift ;;
    --web) web=1; keep=1; shift ;;
    --hsm) hsm=1; simulate=1; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
profile_file="$root/firmware-stubs/profiles/$profile.json"
[ -f "$profile_file" ] || { echo "demo.sh: no profile $profile_file" >&2; exit 2; }

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

say "installing missing packages (Debian 12)"
"$root/scripts/deps.sh"

say "building"
build="${SSC_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target sscardd sscardctl sscard-sim \
  $([ "$web" = 1 ] && echo sscard-web) >/dev/null

sim="$build/firmware-stubs/sscard-sim"
daemon="$build/src/sscardd"
ctl="$build/src/sscardctl"

work=$(mktemp -d /tmp/sscard-demo.XXXXXX)
pids=()
cleanup() {
  # Simulators first: pcscd stops in milliseconds when no card is connected, not seconds.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
if [ "$keep" = 0 ]; then trap cleanup EXIT; fi

# A real reader first: the machine's own pcscd, if it runs and shows a card.
if [ "$simulate" = 0 ] && [ -S /run/pcscd/pcscd.comm ] && [ "$keep" = 0 ]; then
  say "looking for a real reader with a card (the machine's pcscd)"
  printf '[daemon]\nsocket_group =\n[journal]\npath = %s\n' "$work/real-journal.db" >"$work/real.conf"
  env -u PCSCLITE_CSOCK_NAME "$daemon" --foreground --socket "$work/real.sock" \
    --config "$work/real.conf" >"$work/real.log" 2>&1 &
  real_pid=$!
  pids=("$real_pid")
  found=0
  for _ in $(seq 30); do
    if [ -S "$work/real.sock" ] &&
       "$ctl" --socket "$work/real.sock" --json readers 2>/dev/null | grep -q '"role": *"user"'; then
      found=1; break
    fi
    sleep 0.1
  done
  if [ "$found" = 1 ]; then
    say "sscardctl readers"
    "$ctl" --socket "$work/real.sock" readers
    say "sscardctl read-basic   (the card in your reader, read through the API)"
    "$ctl" --socket "$work/real.sock" $json read-basic
    exit $?
  fi
  kill "$real_pid" 2>/dev/null || true
  wait "$real_pid" 2>/dev/null || true
  pids=()
  echo "no real reader with a card: using the simulated card and PSAM"
fi

say "starting a private pcscd with the virtual reader driver (own network namespace)"
mkdir -p "$work/run" "$work/conf" /run/pcscd
cp /usr/lib/pcsc/drivers/serial/libifdvpcd.so "$work/libifdvpcd.so"
cat >"$work/conf/vpcd" <<EOF
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      $work/libifdvpcd.so
CHANNELID    0x8C7B
EOF
unshare -m -n --propagation private sh -c \
  "ip link set lo up && mount --bind '$work/run' /run/pcscd && exec pcscd -f -c '$work/conf'" \
  >"$work/pcscd.log" 2>&1 &
pcscd_pid=$!
pids=("$pcscd_pid")
for _ in $(seq 200); do [ -S "$work/run/pcscd.comm" ] && break; sleep 0.05; done
[ -S "$work/run/pcscd.comm" ] || { echo "demo.sh: pcscd did not start:" >&2; cat "$work/pcscd.log" >&2; exit 1; }
netns=/proc/$pcscd_pid/ns/net

cp "$profile_file" "$work/profile.json"
if [ "$hsm" = 1 ]; then
  say "attaching the simulated card ($profile) to a virtual reader; no PSAM reader"
else
  say "attaching the simulated card ($profile) and PSAM to the virtual readers"
fi
nsenter --net="$netns" "$sim" card --port 35963 --profile "$work/profile.json" \
  --state "$work/card.state" --control "$work/card.ctl" >"$work/card.log" 2>&1 &
card_pid=$!
pids=("${pids[@]}" "$card_pid")
if [ "$hsm" = 1 ]; then
  say "making the certificates (openssl): the key server's CA and certificate, the desks' CA and this desk's"
  pki="$work/pki"
  mkdir -p "$pki"
  ossl() { (cd "$pki" && openssl "$@") >>"$work/openssl.log" 2>&1 ||
    { echo "demo.sh: openssl $* failed:" >&2; cat "$work/openssl.log" >&2; exit 1; }; }
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  ossl req -x509 "${ec[@]}" -keyout server-ca.key -out server-ca.pem -days 30 \
    -subj "/CN=sscard demo key server CA"
  ossl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=127.0.0.1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$pki/server.ext"
  ossl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca.key -CAcreateserial \
    -out server.pem -days 30 -extfile server.ext
  ossl req -x509 "${ec[@]}" -keyout desk-ca.key -out desk-ca.pem -days 30 \
    -subj "/CN=sscard demo desk CA"
  ossl req "${ec[@]}" -keyout desk.key -out desk.csr -subj "/CN=demo desk 1"
  ossl x509 -req -in desk.csr -CA desk-ca.pem -CAkey desk-ca.key -CAcreateserial \
    -out desk.pem -days 30
  chmod 0600 "$pki"/*.key
  say "starting the simulated province key server (sscard-sim hsm, https://127.0.0.1:$hsm_port in the namespace)"
  nsenter --net="$netns" "$sim" hsm --listen "127.0.0.1:$hsm_port" --cert "$pki/server.pem" \
    --key "$pki/server.key" --client-ca "$pki/desk-ca.pem" --psam "$work/profile.json" \
    --control "$work/hsm.ctl" >"$work/hsm.log" 2>&1 &
  keys_pid=$!
  pids=("${pids[@]}" "$keys_pid")
  for _ in $(seq 100); do [ -S "$work/hsm.ctl" ] && break; sleep 0.05; done
  "$sim" ctl "$work/hsm.ctl" status >/dev/null 2>&1 ||
    { echo "demo.sh: the key server did not start:" >&2; cat "$work/hsm.log" >&2; exit 1; }
else
  nsenter --net="$netns" "$sim" psam --port 35964 --profile "$work/profile.json" \
    --control "$work/psam.ctl" >"$work/psam.log" 2>&1 &
  keys_pid=$!
  pids=("${pids[@]}" "$keys_pid")
fi

say "starting sscardd"
# The socket is in the configuration, so that SSCARD_CONFIG alone points sscardctl at this daemon
# (its socket and its journal), as it points sscardd at it.
# With --web the bridge runs as nobody, never as root. For this demo only, the socket is then open
# to every local user (mode 0666); a desk puts the bridge's user in the socket's group instead.
[ "$web" = 1 ] && chmod 0711 "$work"
cat >"$work/sscardd.conf" <<EOF
[daemon]
socket_path = $work/sscardd.sock
socket_group =
$([ "$web" = 1 ] && echo "socket_mode = 0666")
[journal]
path = $work/journal.db
$([ "$web" = 1 ] && printf '[web]\nbridge_user = nobody\n')
$([ "$hsm" = 1 ] && printf '[hsm]\nurl = https://127.0.0.1:%s\nca_file = %s\ncert_file = %s\nkey_file = %s\n' \
  "$hsm_port" "$pki/server-ca.pem" "$pki/desk.pem" "$pki/desk.key")
EOF
export PCSCLITE_CSOCK_NAME="$work/run/pcscd.comm"
# With --hsm, sscardd runs in the network namespace of pcscd and the key server (127.0.0.1 there);
# it reaches pcscd through its socket file either way.
if [ "$hsm" = 1 ]; then
  nsenter --net="$netns" "$daemon" --foreground --config "$work/sscardd.conf" \
    >"$work/sscardd.log" 2>&1 &
else
  "$daemon" --foreground --config "$work/sscardd.conf" >"$work/sscardd.log" 2>&1 &
fi
daemon_pid=$!
pids=("${pids[@]}" "$daemon_pid")
export SSCARD_CONFIG="$work/sscardd.conf"
export SSCARD_SOCKET="$work/sscardd.sock"
for _ in $(seq 100); do [ -S "$SSCARD_SOCKET" ] && break; sleep 0.05; done
[ -S "$SSCARD_SOCKET" ] || { echo "demo.sh: sscardd did not start:" >&2; cat "$work/sscardd.log" >&2; exit 1; }

# The readers' presence poll takes up to about half a second per card.
want=$([ "$hsm" = 1 ] && echo 1 || echo 2)
for _ in $(seq 60); do
  n=$("$ctl" --json readers 2>/dev/null | grep -o '"card": *true' | wc -l || true)
  [ "${n:-0}" -ge "$want" ] && break
  sleep 0.1
done

say "sscardctl readers"
"$ctl" readers
if [ "$hsm" = 1 ]; then
  say "sscardctl read-basic   (the card, read through the API, its keys from the key server)"
else
  say "sscardctl read-basic   (the card, read through the API, EF06 read authorised by the PSAM)"
fi
"$ctl" $json read-basic
if [ "$hsm" = 1 ]; then
  say "the key server's counters (sscard-sim ctl $work/hsm.ctl status)"
  "$sim" ctl "$work/hsm.ctl" status
fi

if [ "$web" = 1 ]; then
  say "starting the browser bridge sscard-web (as nobody, 127.0.0.1:$web_port)"
  # A copy of the page nobody can read wherever this tree is (a clone under a 0700 directory).
  cp -r "$root/web/static" "$work/static" && chmod -R u=rwX,go=rX "$work/static"
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$build/web/sscard-web" --foreground \
    --socket "$SSCARD_SOCKET" --listen "127.0.0.1:$web_port" --static-dir "$work/static" \
    >"$work/sscard-web.log" 2>&1 &
  web_pid=$!
  pids=("${pids[@]}" "$web_pid")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$web_port") 2>/dev/null && break; sleep 0.05; done
  kill -0 "$web_pid" 2>/dev/null || { echo "demo.sh: sscard-web did not start (port $web_port taken?):" >&2; cat "$work/sscard-web.log" >&2; exit 1; }
  code=$("$ctl" web pair "http://127.0.0.1:$web_port" | tail -n 1)
fi

if [ "$keep" = 1 ]; then
  pin=$(sed -n 's/^ *"pin": *"\([0-9]*\)".*/\1/p' "$profile_file" | head -n 1)
  cat <<EOF

Left running:
  pid $(printf '%-8s' "$daemon_pid") sscardd             socket $SSCARD_SOCKET
  pid $(printf '%-8s' "$card_pid") simulated card      profile $profile, control socket $work/card.ctl
$(if [ "$hsm" = 1 ]; then
  echo "  pid $(printf '%-8s' "$keys_pid") simulated key server  https://127.0.0.1:$hsm_port (in the namespace), control socket $work/hsm.ctl"
else
  echo "  pid $(printf '%-8s' "$keys_pid") simulated PSAM      control socket $work/psam.ctl"
fi)
  pid $(printf '%-8s' "$pcscd_pid") pcscd (private)     vpcd readers, socket $PCSCLITE_CSOCK_NAME

Talk to sscardd (sscardctl finds its socket and journal through these):
  export SSCARD_CONFIG=$SSCARD_CONFIG
  export SSCARD_SOCKET=$SSCARD_SOCKET
  $ctl readers
  $ctl read-basic
  echo $pin | $ctl verify-pin
  $ctl events --for 10000
  $ctl journal show --limit 5

Remove and insert the simulated card$([ "$hsm" = 1 ] || echo " (or the PSAM, with psam.ctl)"):
  $sim ctl $work/card.ctl remove
  $sim ctl $work/card.ctl insert

$([ "$web" = 1 ] && cat <<WEB
The browser bridge:
  pid $(printf '%-8s' "$web_pid") sscard-web          ws://127.0.0.1:$web_port/v1 (as nobody)
  Open the demo page:  http://127.0.0.1:$web_port/
  Pairing code for it (single use, 5 minutes; a new one: $ctl web pair http://127.0.0.1:$web_port):
  $code

WEB
)
Logs: $work/*.log
Stop (sscardd, the simulators, then pcscd): kill $daemon_pid $card_pid $keys_pid ${web_pid:-}; sleep 1; kill $pcscd_pid; rm -rf $work
EOF
fi
