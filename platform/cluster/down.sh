#!/usr/bin/env bash
# Stops the cluster that platform/cluster/up.sh started: exactly the daemons in its pid files, in reverse
# order. The pods' sandboxes are removed first (their networks and mounts with them) so that nothing
# blocks the next start; the cluster's state (etcd data, images, certificates) is kept, so the next
# `make cluster` is warm and the kubelet recreates the pods.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$ROOT_DIR/platform/cluster/common.sh"
source "$ROOT_DIR/platform/cluster/network-policies.sh"

# Removes every pod sandbox through the CRI while containerd still runs, after the kubelet is gone
# (else it would restart them at once).
remove_pods() {
  pid_of containerd >/dev/null || return 0
  local out
  if out=$("$K8S_BIN_DIR/cri-reset" "unix://$CONTAINERD_SOCK" 2>&1); then
    log "Removed $(grep -c '^removed' <<<"$out") pod sandboxes"
  else
    log "warning: could not remove every pod sandbox: $out"
  fi
}

[ -d "$RUN_DIR" ] || { log "No cluster state in $CLUSTER_DIR: nothing to stop"; exit 0; }
stop_daemon coredns
stop_daemon kube-proxy
stop_daemon kubelet
remove_pods
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
  stop_daemon "${DAEMONS[i]}"
done
clean_leftovers
remove_network_policy_rules
forward_rules delete
ip link delete "$CNI_BRIDGE" 2>/dev/null || true
log "Cluster stopped (state kept in $CLUSTER_DIR; \`make cluster\` starts it again)"
