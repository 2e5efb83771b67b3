#!/usr/bin/env bash
# Stops what platform/up.sh started, and only that: the database, the registry and dockerd named by
# its pid files under $STATE_DIR. Images, registry data, the database, credentials and caches stay
# for the next start.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT_DIR/platform/database.sh" stop
"$ROOT_DIR/platform/registry.sh" stop
# dockerd stops its containers (10 s grace each) and its own containerd before it exits.
RUN_DIR=$STATE_DIR/docker stop_daemon dockerd 60
log "Platform stopped"
