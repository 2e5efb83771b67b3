#!/usr/bin/env bash
# Runs the whole test suite (unit and integration) against the real platform, which it provisions
# first: toolchain, Docker engine, registry and cluster. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/../platform/lib.sh"

"$ROOT_DIR/toolchain/build.sh"
"$ROOT_DIR/platform/up.sh"
"$ROOT_DIR/platform/cluster/up.sh"
"$ROOT_DIR/scripts/python-env.sh"
source "$ROOT_DIR/scripts/env.sh"
cd "$ROOT_DIR"
exec venv/bin/pytest tests "$@"
