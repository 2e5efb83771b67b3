# metrics-server, the cluster's resource metrics API (metrics.k8s.io: `kubectl top`, the
# HorizontalPodAutoscalers' CPU and memory use): built from the published sigs.k8s.io/metrics-server
# module (cached by version), run on the host like the other daemons, and registered with the API
# server through the aggregation layer. Sourced by up.sh, which calls start_metrics_server last.
# shellcheck shell=bash

METRICS_SERVER_BIN=$CACHE_DIR/metrics-server/v$METRICS_SERVER_VERSION/bin/metrics-server
# Its HTTPS port on the node's address (metrics-server's usual 10250 is the kubelet's here).
METRICS_SERVER_PORT=4443
# The name the aggregator checks metrics-server's certificate for: its Service's, <name>.<namespace>.svc.
METRICS_SERVER_DNS=metrics-server.kube-system.svc

# Its go.mod has no replace lines: `go install` builds it as released, with the version stamps of its
# own Makefile.
build_metrics_server() {
  local build_dir=$CACHE_DIR/metrics-server/v$METRICS_SERVER_VERSION/build stamp=k8s.io/client-go/pkg/version
  rm -rf "$build_dir" && mkdir -p "$build_dir"
  GOBIN=$build_dir CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X $stamp.gitVersion=v$METRICS_SERVER_VERSION -X $stamp.buildDate=1970-01-01T00:00:00Z" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@v$METRICS_SERVER_VERSION"
  # Published whole or not at all: an interrupted build never leaves a half-written binary in the cache.
  mkdir -p "${METRICS_SERVER_BIN%/*}" && mv "$build_dir/metrics-server" "$METRICS_SERVER_BIN"
}

# Its identity, CN=system:metrics-server (the API server and the kubelets it scrapes authorise it by
# the RBAC of metrics-server.yaml), and a serving certificate from the cluster CA, for the Service's
# name and the node's address; re-issued when the node's address changes.
metrics_server_pki() {
  local sans="DNS:$METRICS_SERVER_DNS,IP:$NODE_IP"
  if [ "$(cat "$PKI_DIR/metrics-server-sans" 2>/dev/null)" != "$sans" ]; then
    rm -f "$PKI_DIR"/metrics-server-serving.{crt,key}
    echo "$sans" >"$PKI_DIR/metrics-server-sans"
  fi
  issue metrics-server-serving /CN=metrics-server serverAuth "$sans"
  issue metrics-server /CN=system:metrics-server
  write_kubeconfig metrics-server metrics-server
}

# The aggregation layer: the API server proxies metrics.k8s.io to the Service metrics-server, whose
# Endpoints (no selector: no pod behind it) name the node's address; it checks the serving
# certificate against caBundle, the cluster CA. The Kubernetes 1.32 aggregator reads v1 Endpoints;
# the EndpointSlice kube-proxy routes by is mirrored from them.
register_metrics_api() {
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Endpoints
metadata: {name: metrics-server, namespace: kube-system}
subsets:
  - addresses: [{ip: $NODE_IP}]
    ports: [{name: https, port: $METRICS_SERVER_PORT, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: 443}
  caBundle: $(base64 -w0 "$PKI_DIR/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
}

metrics_api_available() {
  [ "$(kubectl get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" = True ] &&
    kubectl get --raw "/apis/metrics.k8s.io/v1beta1/nodes/$NODE_NAME" | grep -q '"usage"'
}

# Builds it if needed, then starts it once the node is Ready (it scrapes the kubelet, verifying the
# kubelet's serving certificate against the cluster CA, every 15 s: the resolution of its upstream
# manifest), registers it once it is ready and waits until the API server serves the node's usage
# through it.
start_metrics_server() {
  [ -x "$METRICS_SERVER_BIN" ] || with_progress "Building metrics-server v$METRICS_SERVER_VERSION (3-4 min cold)" \
    run_logged "$CACHE_DIR/metrics-server/v$METRICS_SERVER_VERSION/build.log" build_metrics_server
  metrics_server_pki
  kubectl apply -f "$ROOT_DIR/platform/cluster/metrics-server.yaml" >/dev/null
  local kubeconfig=$CLUSTER_DIR/metrics-server.kubeconfig
  start_daemon metrics-server "$METRICS_SERVER_BIN" --kubeconfig="$kubeconfig" \
    --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
    --bind-address="$NODE_IP" --secure-port="$METRICS_SERVER_PORT" \
    --tls-cert-file="$PKI_DIR/metrics-server-serving.crt" --tls-private-key-file="$PKI_DIR/metrics-server-serving.key" \
    --kubelet-certificate-authority="$PKI_DIR/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --kubelet-use-node-status-port --metric-resolution=15s --profiling=false
  # Ready once it has scraped the kubelet; then the API server checks it and marks it Available.
  wait_healthy metrics-server 90 curl -fsS --cacert "$PKI_DIR/ca.crt" "https://$NODE_IP:$METRICS_SERVER_PORT/readyz"
  register_metrics_api
  wait_healthy metrics-server 90 metrics_api_available
}
