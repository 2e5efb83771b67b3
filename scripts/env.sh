# Environment for the local platform; source it (make targets, tests, your shell): `. scripts/env.sh`.
# Safe to source repeatedly and before `make platform` has run: each line only uses what exists.
# shellcheck shell=bash

CLOUDSERVICE_STATE=${CLOUDSERVICE_STATE:-$HOME/.local/state/cloudservice}

# Docker: the engine that scripts/platform.sh starts listens on the default socket.
unset DOCKER_HOST

# Registry: REGISTRY_SERVER, REGISTRY_USERNAME, REGISTRY_PASSWORD, written by scripts/platform.sh.
if [ -f "$CLOUDSERVICE_STATE/registry/credentials.env" ]; then
  # shellcheck source=/dev/null
  . "$CLOUDSERVICE_STATE/registry/credentials.env"
  export REGISTRY_SERVER REGISTRY_USERNAME REGISTRY_PASSWORD
fi
