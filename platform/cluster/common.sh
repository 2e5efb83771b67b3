# Paths and addresses shared by the cluster's scripts (up.sh, down.sh, smoke-test.sh): sourced, never run.
# The daemons run under $RUN_DIR and $LOG_DIR with the daemon helpers of platform/lib.sh.
# shellcheck shell=bash disable=SC2034

K8S_BIN_DIR=$CACHE_DIR/kubernetes/v$KUBERNETES_VERSION/bin
CLUSTER_DIR=$STATE_DIR/cluster
PKI_DIR=$CLUSTER_DIR/pki
LOG_DIR=$CLUSTER_DIR/logs
RUN_DIR=$CLUSTER_DIR/run
ADMIN_KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig
# Secrets at rest: the key, the API server's EncryptionConfiguration (both mode 600, like the PKI), and
# the marker of the one rewrite that encrypted the Secrets stored before (its content: the key's name).
SECRETS_KEY=$PKI_DIR/secrets-encryption.key
ENCRYPTION_CONFIG=$PKI_DIR/encryption-config.yaml
SECRETS_ENCRYPTED_MARKER=$CLUSTER_DIR/secrets-encrypted
SECRETS_KEY_NAME=secretbox-1
CONTAINERD_SOCK=$CLUSTER_DIR/containerd/containerd.sock

# Pods get 10.88.0.0/16 on the bridge cloudsvc0 (the host is 10.88.0.1, also the cluster DNS);
# Services get 10.96.0.0/16. Neither collides with Docker's 172.17.0.0/16.
POD_CIDR=10.88.0.0/16
POD_GATEWAY=10.88.0.1
CNI_BRIDGE=cloudsvc0
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
API_SERVER=https://127.0.0.1:6443
CLUSTER_DOMAIN=cluster.local

# Daemons in start order; cluster-down.sh stops them in reverse.
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns local-volumes)

kubectl() { "$K8S_BIN_DIR/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# clean_leftovers: what a stopped or crashed containerd may have left: orphaned shims of ours (found by
# our socket, so Docker's are never touched) and mounts under the cluster's directory.
clean_leftovers() {
  local cmdline pid exe
  for cmdline in /proc/[0-9]*/cmdline; do
    pid=${cmdline#/proc/} pid=${pid%/cmdline}
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    [[ ${exe##*/} == containerd-shim* ]] || continue
    grep -qsF -- "$CONTAINERD_SOCK" "$cmdline" || continue
    log "Killing leftover shim of the cluster's containerd (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
  done
  awk -v dir="$CLUSTER_DIR/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r |
    xargs -r -n1 umount -l
}

# forward_rules add|delete: Docker sets the FORWARD policy to DROP; these let pod traffic through.
forward_rules() {
  local dir
  for dir in -s -d; do
    local rule=(FORWARD "$dir" "$POD_CIDR" -m comment --comment cloudservice-cluster -j ACCEPT)
    if iptables -C "${rule[@]}" 2>/dev/null; then
      [ "$1" = delete ] && iptables -D "${rule[@]}"
    else
      [ "$1" = add ] && iptables -I "${rule[@]}"
    fi
  done
  return 0
}

# The firewall (network-policies.sh), the entry point (router.sh) and metrics-server
# (metrics-server.sh) start last, once the node is Ready, and stop first.
DAEMONS+=(kube-router traefik metrics-server)
