# Environment for the local platform; source it (make targets, tests, your shell): `. scripts/env.sh`.
# Safe to source repeatedly and before `make platform` has run: each line only uses what exists.
# shellcheck shell=bash

CLOUDSERVICE_STATE=${CLOUDSERVICE_STATE:-$HOME/.local/state/cloudservice}

# Docker: the engine that platform/up.sh starts listens on the default socket.
unset DOCKER_HOST

# Registry: REGISTRY_SERVER, REGISTRY_USERNAME, REGISTRY_PASSWORD, written by platform/up.sh.
if [ -f "$CLOUDSERVICE_STATE/registry/credentials.env" ]; then
  # shellcheck source=/dev/null
  . "$CLOUDSERVICE_STATE/registry/credentials.env"
  export REGISTRY_SERVER REGISTRY_USERNAME REGISTRY_PASSWORD
fi

# Pulumi, built by toolchain/build.sh, fully offline: never look for updates or download plugins;
# plugins live in the project's own Pulumi home.
_cloudservice_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_cloudservice_cache=${CLOUDSERVICE_CACHE:-$HOME/.cache/cloudservice}
# shellcheck source=../versions.env
_cloudservice_pulumi_bin=$(. "$_cloudservice_root/versions.env" && echo "$_cloudservice_cache/toolchain/pulumi-v$PULUMI_VERSION/bin")
case ":$PATH:" in *":$_cloudservice_pulumi_bin:"*) ;; *) PATH="$_cloudservice_pulumi_bin:$PATH" ;; esac
export PATH PULUMI_HOME=${PULUMI_HOME:-$_cloudservice_cache/pulumi-home}
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# No debug log of every command in PULUMI_HOME/logs (our CLI's patch, toolchain/build.sh): it costs
# each command CPU. `pulumi -v=9 --logtostderr` still logs when you ask.
export PULUMI_DISABLE_AUTOMATIC_LOGGING=${PULUMI_DISABLE_AUTOMATIC_LOGGING:-true}
# Pulumi runs 4 resource operations per core at once: on 2 cores, 8 containers waiting for their
# health checks block every other step (bench: 50 services 39 s -> 23 s with 64).
export PULUMI_PARALLEL=${PULUMI_PARALLEL:-64}
unset _cloudservice_root _cloudservice_cache _cloudservice_pulumi_bin
# The local file backend that Pulumi.yaml names must exist before the first `pulumi` command.
mkdir -p "$CLOUDSERVICE_STATE/pulumi"

# Secrets: stacks encrypt theirs with Pulumi's passphrase provider, under a passphrase generated once
# (random, mode 600, outside the repository), unless you set PULUMI_CONFIG_PASSPHRASE or
# PULUMI_CONFIG_PASSPHRASE_FILE yourself. A team shares one: the same file for everyone.
if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  PULUMI_CONFIG_PASSPHRASE_FILE=$CLOUDSERVICE_STATE/pulumi-passphrase
  if [ ! -s "$PULUMI_CONFIG_PASSPHRASE_FILE" ]; then
    # Linked into place, which fails if another shell made it first: one passphrase, never two.
    _cloudservice_new=$(mktemp "$PULUMI_CONFIG_PASSPHRASE_FILE.XXXXXX") # mode 600
    head -c 32 /dev/urandom | base64 >"$_cloudservice_new"
    ln "$_cloudservice_new" "$PULUMI_CONFIG_PASSPHRASE_FILE" 2>/dev/null || true
    rm -f "$_cloudservice_new"
    unset _cloudservice_new
  fi
  export PULUMI_CONFIG_PASSPHRASE_FILE
fi

# Kubernetes: the local cluster's admin kubeconfig, unless you chose another one.
if [ -z "${KUBECONFIG:-}" ] && [ -f "$CLOUDSERVICE_STATE/cluster/admin.kubeconfig" ]; then
  export KUBECONFIG=$CLOUDSERVICE_STATE/cluster/admin.kubeconfig
fi
