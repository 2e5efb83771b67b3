#!/usr/bin/env bash
# Creates the project's virtualenv (venv/, the one Pulumi.yaml names) and installs requirements.txt,
# again only when requirements.txt changes.
set -euo pipefail
source "$(dirname "$0")/../platform/lib.sh"

venv=$ROOT_DIR/venv
stamp=$venv/.requirements.sha256
wanted=$(sha256sum "$ROOT_DIR/requirements.txt" | cut -d' ' -f1)
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && exit 0

install_requirements() {
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT_DIR/requirements.txt"
}
with_progress "Python virtualenv (requirements.txt)" install_requirements
echo "$wanted" >"$stamp"
