#!/usr/bin/env bash
# Runs the whole test suite (unit and integration) against the real platform, which it provisions
# first: toolchain, Docker engine, registry, database and cluster. Extra arguments go to pytest.
# The suite must leave the working tree as it found it (`git status`): it fails otherwise.
set -euo pipefail
source "$(dirname "$0")/../platform/lib.sh"

"$ROOT_DIR/toolchain/build.sh"
"$ROOT_DIR/platform/up.sh"
"$ROOT_DIR/platform/cluster/up.sh"
"$ROOT_DIR/scripts/python-env.sh"
source "$ROOT_DIR/scripts/env.sh"
cd "$ROOT_DIR"

tree_state() { git status --porcelain --untracked-files=all 2>/dev/null || true; }
before=$(tree_state)
log "ruff: lint and format check (pyproject.toml; \`venv/bin/ruff format .\` formats)"
venv/bin/ruff check --quiet .
venv/bin/ruff format --check --quiet .
rc=0
# The slowest tests are listed at the end, where the suite's time goes (CI keeps it under its limit).
venv/bin/pytest tests --durations=30 "$@" || rc=$?
if [ "$(tree_state)" != "$before" ]; then
  log "the test suite changed the working tree (git status before and after):"
  diff <(echo "$before") <(tree_state) >&2 || true
  rc=1
fi
exit "$rc"
