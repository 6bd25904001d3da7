# Sourced by the scripts that need root (demo, test, bench): as_root PRESERVE_ENV_LIST "$0" "$@"
# returns when already root, else re-runs the script under sudo keeping the listed environment
# variables (comma-separated, may be empty), or stops with a clear message when there is no sudo.
as_root() {
  local keep=$1
  shift
  [ "$(id -u)" -eq 0 ] && return 0
  if ! command -v sudo >/dev/null 2>&1; then
    echo "$(basename "$1"): needs root (network namespaces, packages): run it as root, or install sudo" >&2
    exit 1
  fi
  if [ -n "$keep" ]; then
    exec sudo --preserve-env="$keep" "$@"
  fi
  exec sudo "$@"
}
