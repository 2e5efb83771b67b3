#!/usr/bin/env bash
# The platform's registry: Debian's docker-registry (distribution) on 127.0.0.1:$REGISTRY_PORT,
# password protected (htpasswd, generated credentials), manifests deletable by digest, its storage and
# credentials under $STATE_DIR/registry. Idempotent.
# Usage: platform/registry.sh [start|stop|collect]
#   start    (platform/up.sh) credentials once, the htpasswd file and config that match them, the daemon
#   stop     (platform/down.sh)
#   collect  (`make gc`, `make destroy`) the registry's garbage collection: frees the blobs no manifest
#            uses any more. It needs the registry stopped for that moment (a push then would lose
#            blobs): the registry is stopped and, if it ran, started again, a few seconds in all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUN_DIR=$STATE_DIR/registry
LOG_DIR=$RUN_DIR
CREDENTIALS=$RUN_DIR/credentials.env
CONFIG=$RUN_DIR/config.yml
REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
DAEMON_EXES[registry]=docker-registry

# Creates the registry credentials once, and the htpasswd file and config that match them; a running
# registry is stopped when they change, to be started again with them.
configure() {
  mkdir -p "$RUN_DIR/data"
  if [ ! -s "$CREDENTIALS" ]; then
    log "Generating registry credentials in $CREDENTIALS"
    (umask 077 && printf 'REGISTRY_SERVER=%s\nREGISTRY_USERNAME=%s\nREGISTRY_PASSWORD=%s\n' \
      "localhost:$REGISTRY_PORT" cloudservice "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')" >"$CREDENTIALS")
  fi
  chmod 600 "$CREDENTIALS"
  # shellcheck source=/dev/null
  source "$CREDENTIALS"
  local htpasswd=$RUN_DIR/htpasswd
  if ! htpasswd -iv "$htpasswd" "$REGISTRY_USERNAME" <<<"$REGISTRY_PASSWORD" >/dev/null 2>&1; then
    htpasswd -iBc "$htpasswd" "$REGISTRY_USERNAME" <<<"$REGISTRY_PASSWORD" 2>/dev/null
    chmod 600 "$htpasswd"
    stop_daemon registry
  fi
  # The text stays as earlier releases wrote it: a changed file restarts the registry.
  put_file "$CONFIG" registry <<EOF
# Written by scripts/platform.sh: the project's local registry, loopback only, password protected.
version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $RUN_DIR/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: cloudservice-registry
    path: $htpasswd
EOF
}

# registry_status [CURL-ARGS...]: HTTP status of the catalog (000 when nothing listens).
registry_status() { curl -s -o /dev/null -w '%{http_code}' "$@" "$REGISTRY_URL/v2/_catalog" || true; }
registry_up() { [ "$(registry_status)" = 401 ]; }

check() {
  local anonymous authenticated
  anonymous=$(registry_status)
  authenticated=$(registry_status -u "$REGISTRY_USERNAME:$REGISTRY_PASSWORD")
  if [ "$anonymous" != 401 ] || [ "$authenticated" != 200 ]; then
    die "registry auth is not as expected: anonymous $anonymous (want 401), with credentials $authenticated (want 200)"
  fi
}

start() {
  configure
  if ! pid_of registry >/dev/null; then
    [ "$(registry_status)" = 000 ] || die "something else already listens on 127.0.0.1:$REGISTRY_PORT"
  fi
  start_daemon registry docker-registry serve "$CONFIG"
  wait_healthy registry 20 registry_up
  check
}

storage_bytes() { du -sB1 "$RUN_DIR/data" | cut -f1; }

collect() {
  [ -f "$CONFIG" ] || { log "No registry here yet: nothing to collect"; return; }
  exec 9>"$RUN_DIR/garbage-collect.lock" # one collection at a time
  flock 9
  local before after was_running=false rc=0
  before=$(storage_bytes)
  pid_of registry >/dev/null && was_running=true
  stop_daemon registry 10
  # Without --delete-untagged: a manifest whose tag was pushed again may still be pinned by digest.
  run_logged "$RUN_DIR/garbage-collect.log" docker-registry garbage-collect "$CONFIG" || rc=$?
  # Started without the lock's descriptor: a registry holding it would block every later collection.
  if "$was_running"; then start 9>&-; fi
  [ "$rc" -eq 0 ] || die "registry garbage collection failed (exit $rc)"
  after=$(storage_bytes)
  log "Registry garbage collection: $((before - after)) bytes reclaimed ($before -> $after bytes in $RUN_DIR/data)"
}

case ${1:-start} in
  start) start ;;
  stop) stop_daemon registry 10 ;;
  collect) collect ;;
  *) die "usage: $0 [start|stop|collect]" ;;
esac
