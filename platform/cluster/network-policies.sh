# NetworkPolicy enforcement: kube-router's network policy controller (its firewall only: no routing,
# no service proxy), built from the published github.com/cloudnativelabs/kube-router/v2 module with
# one patch of ours (below) and run on the host like the other daemons. It turns the policies into iptables rules
# and ipsets: a chain per local pod, reached from FORWARD (pod to pod across the bridge, which bridge
# netfilter sends through iptables), OUTPUT and INPUT, that drops what no policy allows. Traffic from
# the node itself (the kubelet's probes, host daemons) is always let through.
# kube-router, kube-proxy and Docker all run the `iptables` on PATH (Debian's alternative, nf_tables
# by default), so their rules share one set of tables and kube-router's jumps come first.
# Sourced by up.sh, which calls start_network_policies once the node is Ready (kube-router reads the
# node's address from its Node object at start).
# shellcheck shell=bash

# kube-router with one change of ours (kube-router-drop.patch): traffic no policy allows is dropped,
# not rejected. A new pod's address reaches the allowed sets only at kube-router's next sync, up to
# a few seconds after its containers start; a connection it opens at once (a migration job to its
# database) would be refused outright, where a dropped SYN is resent (after 1 s, 3 s, 7 s) and gets
# through once the sync is done. Calico and Cilium drop too. Cached by version and patch.
KUBE_ROUTER_PATCH=$ROOT_DIR/platform/cluster/kube-router-drop.patch
KUBE_ROUTER_BUILD=v$KUBE_ROUTER_VERSION+cloudservice.$(sha256sum <"$KUBE_ROUTER_PATCH" | cut -c1-8)
KUBE_ROUTER_BIN=$CACHE_DIR/kube-router/$KUBE_ROUTER_BUILD/bin/kube-router
# Its health endpoint (kube-router's default port; served on every address, answers "OK" only).
KUBE_ROUTER_HEALTH_PORT=20244

build_kube_router() {
  build_patched_go_module "github.com/cloudnativelabs/kube-router/v2@v$KUBE_ROUTER_VERSION" ./cmd/kube-router \
    github.com/cloudnativelabs/kube-router/v2/pkg/version "$KUBE_ROUTER_BUILD" "$KUBE_ROUTER_BIN" "$KUBE_ROUTER_PATCH"
}

# Enforcing: every running pod of the node has its firewall chain, jumped to from KUBE-ROUTER-FORWARD
# for its address (so a pod started before kube-router is covered too). Pods on the node's own
# network have none: no policy can select them.
network_policies_enforced() {
  local rules pods ip host_network
  rules=$(iptables -w -S KUBE-ROUTER-FORWARD) &&
    pods=$(kubectl get pods -A --field-selector="spec.nodeName=$NODE_NAME,status.phase=Running" \
      --no-headers -o custom-columns=IP:.status.podIP,HOST_NETWORK:.spec.hostNetwork) || return 1
  while read -r ip host_network; do
    [ -z "$ip" ] || [ "$host_network" = true ] || grep -qF -- "-d $ip/32 " <<<"$rules" || return 1
  done <<<"$pods"
}

# Builds it if needed, then starts it with its own identity (CN=system:kube-router, which may only
# read what the policies depend on: network-policies.yaml) and waits until every pod is covered.
# It syncs on every change; the periodic sync (every 30 s here, 5 min by default) only bounds how
# long a sync that failed stays unretried.
start_network_policies() {
  [ -x "$KUBE_ROUTER_BIN" ] || with_progress "Building kube-router $KUBE_ROUTER_BUILD (3-5 min cold)" \
    run_logged "$CACHE_DIR/kube-router/$KUBE_ROUTER_BUILD/build.log" build_kube_router
  kubectl apply -f "$ROOT_DIR/platform/cluster/network-policies.yaml" >/dev/null
  start_daemon kube-router "$KUBE_ROUTER_BIN" --kubeconfig="$CLUSTER_DIR/kube-router.kubeconfig" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --hostname-override="$NODE_NAME" --service-cluster-ip-range="$SERVICE_CIDR" \
    --health-port="$KUBE_ROUTER_HEALTH_PORT" --iptables-sync-period=30s
  wait_healthy kube-router 60 curl -fsS "http://127.0.0.1:$KUBE_ROUTER_HEALTH_PORT/healthz"
  wait_healthy kube-router 60 network_policies_enforced
}

# What a stopped kube-router leaves: the jumps to its chains, its chains (per pod, per policy) and its
# ipsets. down.sh removes them, so that a stopped cluster keeps no rules for pods that are gone; the
# next start rebuilds them from the API.
remove_network_policy_rules() {
  local rules
  rules=$(iptables-save -t filter)
  {
    echo '*filter'
    grep -E '^-A (INPUT|FORWARD|OUTPUT) .*-j KUBE-ROUTER-' <<<"$rules" | sed 's/^-A/-D/' || true
    grep -oE '^:KUBE-(ROUTER|POD-FW|NWPLCY)-[^ ]+' <<<"$rules" | sed 's/^:/-F /' || true
    grep -oE '^:KUBE-(ROUTER|POD-FW|NWPLCY)-[^ ]+' <<<"$rules" | sed 's/^:/-X /' || true
    echo COMMIT
  } | iptables-restore -w --noflush
  command -v ipset >/dev/null || return 0 # a cluster started before kube-router ran has none
  ipset list -n | { grep -E '^KUBE-(SRC|DST)-' || true; } | xargs -r -n1 ipset destroy
}
