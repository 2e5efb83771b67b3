#!/usr/bin/env bash
# The inner loop around a running stack (devtools/): `make dev`, `make logs`, `make status`, `make gc`.
# Usage: scripts/devtools.sh {dev|logs|status|gc} STACK [SERVICE]
set -euo pipefail
source "$(dirname "$0")/../platform/lib.sh"

command=$1 stack=${2:?"usage: scripts/devtools.sh dev|logs|status|gc STACK [SERVICE]"} service=${3:-}
"$ROOT_DIR/scripts/python-env.sh"
source "$ROOT_DIR/scripts/env.sh"
cd "$ROOT_DIR"
args=("$command" --stack "$stack")
[ -n "$service" ] && args+=(--service "$service")
exec venv/bin/python -m devtools "${args[@]}"
