#!/usr/bin/env bash
# Benchmarks the stack against the raw docker CLI, docker-compose and kubectl, side by side
# (bench/README.md). Needs `make platform` first. Arguments go to bench/run.py: --runs N, --quick,
# --sections a,b (a subset), --no-write (print, leave results.json, README and chart alone).
# `scripts/bench.sh soak [--seconds N] [--targets docker,kubernetes]` runs the long soak instead (bench/soak.py).
set -euo pipefail
source "$(dirname "$0")/../platform/lib.sh"

module=bench.run
if [ "${1:-}" = soak ]; then
  module=bench.soak
  shift
fi
# The Compose side runs Debian's docker-compose (v1, the one that talks to a 20.10 engine).
if ! command -v docker-compose >/dev/null; then
  log "installing docker-compose (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null
fi
"$ROOT_DIR/scripts/python-env.sh"
source "$ROOT_DIR/scripts/env.sh"
cd "$ROOT_DIR"
exec venv/bin/python -m "$module" "$@"
