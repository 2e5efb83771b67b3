#!/usr/bin/env bash
# Starts a single-node Kubernetes cluster on this machine, without an init system and without pulling
# any image from the internet: etcd (Debian), the control plane, kubelet and kube-proxy built from the
# k8s.io/kubernetes Go module (cached by version), a second containerd (Debian) for the CRI, Debian's
# CNI plugins, CoreDNS on the host for cluster DNS, a default StorageClass of host directories,
# kube-router's firewall to enforce NetworkPolicies (network-policies.sh), metrics-server for the
# resource metrics API (`kubectl top`, autoscaling; metrics-server.sh) and the entry point, Traefik as
# the ingress controller of the IngressClass `cloudservice` (router.sh).
# Pods pull from the local registry made by platform/up.sh. Idempotent: what already runs is
# left alone, so a warm run takes seconds. platform/cluster/down.sh stops it.
# Admin kubeconfig: $STATE_DIR/cluster/admin.kubeconfig.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$ROOT_DIR/platform/cluster/common.sh"
source "$ROOT_DIR/platform/cluster/build.sh"
source "$ROOT_DIR/platform/cluster/pki.sh"
source "$ROOT_DIR/platform/cluster/config.sh"
source "$ROOT_DIR/platform/cluster/network-policies.sh"
source "$ROOT_DIR/platform/cluster/metrics-server.sh"
source "$ROOT_DIR/platform/router.sh"
source "$ROOT_DIR/platform/cluster/router.sh"

APT_PACKAGES=(containerd runc etcd-server containernetworking-plugins conntrack iptables ipset nftables kmod openssl curl)
CREDENTIALS=$STATE_DIR/registry/credentials.env

build_binaries() {
  command -v go >/dev/null || die "Go is required to build Kubernetes and CoreDNS (https://go.dev/dl)"
  kubernetes_built || with_progress "Building Kubernetes v$KUBERNETES_VERSION (${K8S_COMPONENTS[*]}; about 5 min cold)" \
    run_logged "$CACHE_DIR/kubernetes/v$KUBERNETES_VERSION/build.log" build_kubernetes
  [ -x "$COREDNS_BIN" ] || with_progress "Building CoreDNS v$COREDNS_VERSION (a few minutes)" \
    run_logged "$CACHE_DIR/coredns/v$COREDNS_VERSION/build.log" build_coredns
  ensure_traefik
}

# The node is this machine: its name, and the address of the interface of the default route.
detect_node() {
  NODE_NAME=$(hostname | tr '[:upper:]' '[:lower:]')
  NODE_IP=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  NODE_IP=${NODE_IP:-$(hostname -I | awk '{print $1}')}
  [ -n "$NODE_IP" ] || die "no IPv4 address for the node (no default route?)"
}

# The registry credentials and the pause image come from platform/up.sh (`make platform`).
load_registry_credentials() {
  local i
  for ((i = 0; i < 60; i++)); do
    [ -s "$CREDENTIALS" ] && break
    ((i % 10)) || log "Waiting for $CREDENTIALS (made by platform/up.sh) ..."
    sleep 2
  done
  [ -s "$CREDENTIALS" ] || die "no registry credentials in $CREDENTIALS: run \`make platform\` first"
  # shellcheck source=/dev/null
  source "$CREDENTIALS"
  [ -n "${PAUSE_IMAGE:-}" ] || die "PAUSE_IMAGE is not set in versions.env"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY_SERVER/v2/")" = 401 ] ||
    log "warning: the registry $REGISTRY_SERVER does not answer; pods cannot start until it does"
}

# Host networking: bridge netfilter, the pod bridge with its gateway address (CoreDNS binds to it),
# a route that keeps the Service range on this machine, and FORWARD rules past Docker's DROP policy.
setup_network() {
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 ||
    die "cannot enable IP forwarding and bridge netfilter (is br_netfilter available?)"
  if ! ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
    ip link add "$CNI_BRIDGE" type bridge
  fi
  ip addr replace "$POD_GATEWAY/${POD_CIDR#*/}" dev "$CNI_BRIDGE"
  ip link set "$CNI_BRIDGE" up
  ip route replace "$SERVICE_CIDR" dev "$CNI_BRIDGE" src "$POD_GATEWAY"
  forward_rules add
}

api_ready() { curl -fsS --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key" "$API_SERVER/readyz"; }
# Ready, as reported by the kubelet that runs now (not a status left from before a restart).
node_ready() {
  local ready started
  ready=$(kubectl get node "$NODE_NAME" -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.status} {.lastHeartbeatTime}{end}')
  started=$(date -u -r "$RUN_DIR/kubelet.pid" +%Y-%m-%dT%H:%M:%SZ)
  [ "${ready% *}" = True ] && [[ ! ${ready#* } < $started ]]
}

rewrite_secrets() { kubectl get secrets -A -o json | kubectl replace -f - >/dev/null; }

# Once, after the API server first runs with the key: rewrites every Secret, so that those stored
# before (in plaintext) are encrypted too. A Secret changed meanwhile fails the rewrite: retried.
encrypt_stored_secrets() {
  [ "$(cat "$SECRETS_ENCRYPTED_MARKER" 2>/dev/null)" = "$SECRETS_KEY_NAME" ] && return
  local count attempt start=$SECONDS
  count=$(kubectl get secrets -A --no-headers | wc -l)
  log "Encrypting the $count Secrets stored before the key at rest (rewriting each once) ..."
  for ((attempt = 1; count > 0; attempt++)); do
    run_logged "$LOG_DIR/encrypt-secrets.log" rewrite_secrets && break
    ((attempt < 3)) || die "could not rewrite the Secrets to encrypt them"
    log "  retrying (a Secret changed meanwhile?)"
  done
  echo "$SECRETS_KEY_NAME" >"$SECRETS_ENCRYPTED_MARKER"
  log "Secrets encrypted at rest in $((SECONDS - start))s"
}

# Starts the daemons in dependency order, without waiting where nothing depends on it yet.
start_cluster() {
  start_daemon etcd etcd --name cloudservice --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster cloudservice=http://127.0.0.1:2380
  start_daemon containerd containerd --config "$CLUSTER_DIR/containerd/config.toml"
  wait_healthy etcd 60 sh -c 'curl -fsS http://127.0.0.1:2379/health | grep -q "\"health\":\"true\""'

  # etcd listens on loopback only (plain http, as in Kubernetes' hack/local-up-cluster.sh).
  start_daemon kube-apiserver "$K8S_BIN_DIR/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 --advertise-address="$NODE_IP" --secure-port=6443 \
    --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --tls-cert-file="$PKI_DIR/kube-apiserver.crt" --tls-private-key-file="$PKI_DIR/kube-apiserver.key" \
    --kubelet-certificate-authority="$PKI_DIR/ca.crt" \
    --kubelet-client-certificate="$PKI_DIR/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI_DIR/apiserver-kubelet-client.key" \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file="$PKI_DIR/sa.pub" --service-account-signing-key-file="$PKI_DIR/sa.key" \
    --requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI_DIR/front-proxy-client.crt" --proxy-client-key-file="$PKI_DIR/front-proxy-client.key" \
    --encryption-provider-config="$ENCRYPTION_CONFIG" --profiling=false
  wait_healthy kube-apiserver 120 api_ready
  encrypt_stored_secrets

  # One node: no leader election. WatchListClient is off as Debian's etcd 3.4 lacks the watch
  # progress requests it needs (the controller-manager would log a fallback on every list).
  local common=(--bind-address=127.0.0.1 --leader-elect=false --profiling=false)
  start_daemon kube-controller-manager "$K8S_BIN_DIR/kube-controller-manager" "${common[@]}" \
    --kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --client-ca-file="$PKI_DIR/ca.crt" --root-ca-file="$PKI_DIR/ca.crt" \
    --cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
    --service-account-private-key-file="$PKI_DIR/sa.key" --use-service-account-credentials=true \
    --service-cluster-ip-range="$SERVICE_CIDR" --cluster-name=cloudservice --feature-gates=WatchListClient=false
  start_daemon kube-scheduler "$K8S_BIN_DIR/kube-scheduler" "${common[@]}" \
    --kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig"

  # Not just its socket: the kubelet exits at once if containerd's CRI has not recovered its state yet.
  wait_healthy containerd 60 "$K8S_BIN_DIR/cri-ready" "unix://$CONTAINERD_SOCK"
  import_pause_image
  mkdir -p "$CLUSTER_DIR/kubelet" "$CLUSTER_DIR/pod-logs"
  # The kubelet also pulls with any docker login it finds (config.json in its working directory,
  # $HOME/.docker): it runs where there is none, so only the pods' imagePullSecrets count.
  (cd "$CLUSTER_DIR/kubelet" && HOME=$CLUSTER_DIR/kubelet start_daemon kubelet "$K8S_BIN_DIR/kubelet" \
    --config="$CLUSTER_DIR/kubelet.yaml" --kubeconfig="$CLUSTER_DIR/kubelet.kubeconfig" --root-dir="$CLUSTER_DIR/kubelet" \
    --container-runtime-endpoint="unix://$CONTAINERD_SOCK" --pod-infra-container-image="$PAUSE_IMAGE" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --containerd="$CONTAINERD_SOCK")
  start_daemon kube-proxy "$K8S_BIN_DIR/kube-proxy" --config="$CLUSTER_DIR/kube-proxy.yaml"
  kubectl apply -f "$ROOT_DIR/platform/cluster/addons.yaml" >/dev/null
  start_daemon coredns "$COREDNS_BIN" -conf "$CLUSTER_DIR/Corefile"
  start_daemon local-volumes "$K8S_BIN_DIR/local-volumes" "$CLUSTER_DIR/local-volumes.kubeconfig" "$CLUSTER_DIR/volumes"

  wait_healthy kube-controller-manager 60 curl -fsSk https://127.0.0.1:10257/healthz
  wait_healthy kube-scheduler 60 curl -fsSk https://127.0.0.1:10259/healthz
  wait_healthy kubelet 120 curl -fsS http://127.0.0.1:10248/healthz
  wait_healthy kubelet 120 node_ready
  wait_healthy kube-proxy 60 curl -fsS http://127.0.0.1:10256/healthz
  wait_healthy coredns 60 curl -fsS http://127.0.0.1:8181/ready
  wait_healthy local-volumes 10 kubectl get storageclass local
}

start=$SECONDS
((${#CONTAINERD_SOCK} < 100)) || die "state path too long for a unix socket: $CONTAINERD_SOCK (set CLOUDSERVICE_STATE)"
mkdir -p "$CLUSTER_DIR" "$LOG_DIR" "$RUN_DIR"
install_packages "$LOG_DIR/apt.log" "${APT_PACKAGES[@]}"
build_binaries
detect_node
load_registry_credentials
make_pki
write_containerd_config
write_cni_config
write_kubelet_config
write_kube_proxy_config
write_corefile
write_encryption_config
setup_network
pid_of containerd >/dev/null || clean_leftovers # after a crash or a kill: no stale mounts or shims
start_cluster
start_network_policies
start_router
start_metrics_server
log "Cluster ready in $((SECONDS - start))s: Kubernetes $(kubectl get --raw /version |
  sed -n 's/.*"gitVersion": "\(.*\)",/\1/p'), node $NODE_NAME ($NODE_IP)"
log "  kubeconfig: $ADMIN_KUBECONFIG (e.g. $K8S_BIN_DIR/kubectl --kubeconfig $ADMIN_KUBECONFIG get nodes)"
log "  pods $POD_CIDR, services $SERVICE_CIDR, cluster DNS $POD_GATEWAY ($CLUSTER_DOMAIN); logs in $LOG_DIR"
log "  entry point https://127.0.0.1:$CLUSTER_HTTPS_PORT (IngressClass cloudservice; CA $ENTRYPOINT_CA)"
