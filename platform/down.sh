#!/usr/bin/env bash
# Stops what platform/up.sh started, and only that: the registry and dockerd named by its pid
# files under $STATE_DIR. Images, registry data, credentials and caches stay for the next start.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# stop PIDFILE NAME TIMEOUT: SIGTERM the process named NAME in PIDFILE, SIGKILL it after TIMEOUT seconds.
stop() {
  local pidfile=$1 name=$2 timeout=$3 pid i
  pid=$(cat "$pidfile" 2>/dev/null) || { log "$name: not running (no pid file from platform.sh)"; return; }
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
    log "$name: not running (stale pid file removed)"
    rm -f "$pidfile"
    return
  fi
  log "Stopping $name (pid $pid)"
  kill -TERM "$pid"
  for ((i = 0; i < timeout * 5; i++)); do
    [ -e "/proc/$pid" ] || break
    sleep 0.2
  done
  if [ -e "/proc/$pid" ]; then
    log "$name did not stop within ${timeout}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop "$STATE_DIR/registry/registry.pid" docker-registry 10
# dockerd stops its containers (10 s grace each) and its own containerd before it exits.
stop "$STATE_DIR/docker/dockerd.pid" dockerd 60
log "Platform stopped"
