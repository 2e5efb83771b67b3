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
