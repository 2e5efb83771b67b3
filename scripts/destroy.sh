#!/usr/bin/env bash
# Removes everything a stack made (the pushed images stay: they are the release history), also
# when its last run was killed (devtools/recover.py runs first), then runs the registry's garbage
# collection (`make gc` deletes old images). Usage: scripts/destroy.sh STACK
set -euo pipefail
source "$(dirname "$0")/../platform/lib.sh"

stack=${1:?usage: scripts/destroy.sh STACK}
"$ROOT_DIR/scripts/python-env.sh"
source "$ROOT_DIR/scripts/env.sh"
cd "$ROOT_DIR"

venv/bin/python -m devtools recover --stack "$stack"
pulumi destroy --yes --stack "$stack"
log "$stack is destroyed"
"$ROOT_DIR/platform/registry.sh" collect
