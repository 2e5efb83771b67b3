# Shared helpers for the project's scripts: sourced, never run.
# shellcheck shell=bash

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../versions.env
source "$ROOT_DIR/versions.env"

# Long builds and platform state live outside the checkout, so fresh clones reuse them.
CACHE_DIR=${CLOUDSERVICE_CACHE:-$HOME/.cache/cloudservice}
STATE_DIR=${CLOUDSERVICE_STATE:-$HOME/.local/state/cloudservice}

export GOTOOLCHAIN=local GOFLAGS=-mod=mod

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Runs a command with a timer and a heartbeat line every 30 s, so long builds show they are alive.
with_progress() {
  local what=$1; shift
  local start=$SECONDS
  log "$what ..."
  ( while sleep 30; do log "  ... $what: $((SECONDS - start))s"; done ) &
  local ticker=$!
  local rc=0
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  [ "$rc" -eq 0 ] || die "$what failed (exit $rc)"
  log "$what done in $((SECONDS - start))s"
}

# run_logged LOG COMMAND...: runs COMMAND (in a subshell) with its output in LOG, shown only on failure.
run_logged() {
  local file=$1 rc=0
  shift
  mkdir -p "${file%/*}"
  ("$@") >"$file" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { tail -n 25 "$file" >&2; log "full log: $file"; }
  return "$rc"
}

# install_packages LOG PACKAGE...: installs the Debian packages that are missing (apt-get update
# only when the first attempt fails, e.g. on a machine whose package lists were never fetched).
install_packages() {
  local file=$1 missing=() package
  shift
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ "${#missing[@]}" -eq 0 ] && return
  export DEBIAN_FRONTEND=noninteractive
  with_progress "Installing ${missing[*]} (apt)" run_logged "$file" sh -c \
    'apt-get install -y --no-install-recommends "$@" || { apt-get update && apt-get install -y --no-install-recommends "$@"; }' \
    apt "${missing[@]}"
}
