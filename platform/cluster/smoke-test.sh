#!/usr/bin/env bash
# Checks the running cluster end to end: API ready, node Ready, a pod whose image is pulled from the
# local authenticated registry with an imagePullSecret, running as non-root on a volume of the default
# StorageClass, a Service reached from the host (ClusterIP and NodePort on 127.0.0.1) and from a pod
# by its DNS name, and the metrics API (metrics-server) reporting the node's and the pod's use.
# Cleans up after itself. Only loopback and the cluster's own pod and Service ranges
# are contacted.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$ROOT_DIR/platform/cluster/common.sh"
# shellcheck source=/dev/null
source "$STATE_DIR/registry/credentials.env"

NS=cluster-smoke
IMAGE=$REGISTRY_SERVER/$BASE_IMAGE
pass() { log "ok: $*"; }
trap 'kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT

[ "$(kubectl get --raw /readyz)" = ok ] && pass "/readyz answers ok"
kubectl wait --for=condition=Ready node --all --timeout=60s >/dev/null && pass "node Ready"
kubectl wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=60s >/dev/null ||
  die "the metrics API is not available: $(kubectl get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions}')"
top=$(kubectl top node --no-headers) || die "no node metrics from the metrics API"
pass "metrics API (metrics-server): $(awk '{print $1 " uses " $2 " CPU, " $4 " memory"}' <<<"$top")"

kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NS" create secret docker-registry registry --docker-server="$REGISTRY_SERVER" \
  --docker-username="$REGISTRY_USERNAME" --docker-password="$REGISTRY_PASSWORD" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: $NS}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: $NS, labels: {app: web}}
spec:
  imagePullSecrets: [{name: registry}]
  securityContext: {runAsUser: 10001, runAsNonRoot: true}
  containers:
    - name: web
      image: $IMAGE
      imagePullPolicy: Always
      command: [sh, -c, "echo written > /data/probe && exec python3 -m http.server -d /data 8080"]
      ports: [{containerPort: 8080}]
      readinessProbe: {httpGet: {path: /probe, port: 8080}, periodSeconds: 1}
      volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: $NS}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
EOF
# The first pod waits for the namespace's default service account.
kubectl -n "$NS" wait --for=condition=Ready pod/web --timeout=180s >/dev/null ||
  die "pod $NS/web is not Ready: $(kubectl -n "$NS" describe pod web | tail -n 15)"
pass "pod $NS/web running $IMAGE (pulled with an imagePullSecret) as uid 10001"
pass "it wrote to its volume $(kubectl -n "$NS" get pvc data -o jsonpath='{.spec.volumeName} (class {.spec.storageClassName})')"

cluster_ip=$(kubectl -n "$NS" get service web -o jsonpath='{.spec.clusterIP}')
node_port=$(kubectl -n "$NS" get service web -o jsonpath='{.spec.ports[0].nodePort}')
# kube-proxy may need a moment to program a new Service.
for url in "http://$cluster_ip" "http://127.0.0.1:$node_port"; do
  for ((i = 0; i < 30; i++)); do curl -fs -m 2 -o /dev/null "$url/probe" && break; sleep 1; done
  [ "$(curl -fsS -m 2 "$url/probe")" = written ] || die "no HTTP answer from $url"
  pass "HTTP from the host via $url"
done

kubectl -n "$NS" exec web -- python3 -c "
import urllib.request
assert urllib.request.urlopen('http://web.$NS.svc.$CLUSTER_DOMAIN/probe', timeout=5).read() == b'written\\n'" ||
  die "the pod cannot reach its Service by DNS name"
pass "HTTP from a pod via http://web.$NS.svc.$CLUSTER_DOMAIN/ (cluster DNS)"
# metrics-server reports a new pod after two scrapes (15 s apart).
for ((i = 0; i < 60; i++)); do kubectl -n "$NS" top pod web >/dev/null 2>&1 && break; sleep 1; done
top=$(kubectl -n "$NS" top pod web --no-headers) || die "no metrics for pod $NS/web from the metrics API"
pass "metrics of pod $NS/web: $(awk '{print $2 " CPU, " $3 " memory"}' <<<"$top")"
log "Cluster smoke test passed"
