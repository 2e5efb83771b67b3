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
# Most of a test's time is waits (builds, rollouts, probes), so the modules run two at a time, a
# module per worker (pytest-xdist); the exclusive ones (pytest.ini) stop or load a part every test
# shares, so they run alone, after. The slowest tests are listed at the end of each: where the time goes.
TEST_WORKERS=${TEST_WORKERS:-2}
rc=0 phases_run=0
run_phase() {
  local name=$1 phase_rc=0; shift
  log "tests: $name"
  venv/bin/pytest tests --durations=30 "$@" || phase_rc=$?
  # 5: no test selected in this phase (arguments that name only the other phase's tests).
  [ "$phase_rc" -eq 5 ] && return
  phases_run=$((phases_run + 1))
  [ "$phase_rc" -eq 0 ] || rc=$phase_rc
}
run_phase "the modules, $TEST_WORKERS at a time" -m "not exclusive" -n "$TEST_WORKERS" --dist loadfile "$@"
run_phase "the exclusive modules, alone" -m exclusive "$@"
[ "$phases_run" -gt 0 ] || { log "no test matched: $*"; rc=5; }
if [ "$(tree_state)" != "$before" ]; then
  log "the test suite changed the working tree (git status before and after):"
  diff <(echo "$before") <(tree_state) >&2 || true
  rc=1
fi
exit "$rc"
