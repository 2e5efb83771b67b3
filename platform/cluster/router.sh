# The cluster's entry point: Traefik (platform/router.sh) as the ingress controller of the IngressClass
# `cloudservice`, on the host like the other daemons. It watches the Ingresses, Services and
# EndpointSlices with an identity of its own (router.yaml: read-only but for the Ingresses' status)
# and sends each request straight to a ready pod (the host reaches the pod network), retrying on
# another pod when a connection fails. It serves https only, on 127.0.0.1:$CLUSTER_HTTPS_PORT, with
# the platform's certificate by default and an Ingress's own TLS Secret for its hosts.
# Sourced by up.sh, which calls start_router once the node is Ready.
# shellcheck shell=bash

ROUTER_CONFIG=$CLUSTER_DIR/router.yaml
ROUTER_DYNAMIC=$CLUSTER_DIR/router-dynamic.yaml
# Its health check (/ping), on loopback.
ROUTER_PING=127.0.0.1:10254

write_router_config() {
  # Static: the entry points and providers (a change restarts it).
  put_file "$ROUTER_CONFIG" traefik <<EOF
global: {checkNewVersion: false, sendAnonymousUsage: false}
log: {level: INFO, noColor: true}
entryPoints:
  websecure:
    address: "127.0.0.1:$CLUSTER_HTTPS_PORT"
    asDefault: true
    http:
      tls: {}
      middlewares: [retry@file]
  ping:
    address: "$ROUTER_PING"
ping: {entryPoint: ping}
providers:
  kubernetesIngress:
    ingressClass: cloudservice
    # Shown as the Ingresses' address (kubectl get ingress).
    ingressEndpoint: {ip: 127.0.0.1}
  file: {filename: "$ROUTER_DYNAMIC"}
EOF
  # Dynamic: the default certificate and the retry every route gets.
  put_file "$ROUTER_DYNAMIC" traefik <<EOF
tls:
  stores:
    default:
      defaultCertificate: {certFile: "$ENTRYPOINT_CERT", keyFile: "$ENTRYPOINT_KEY"}
http:
  middlewares:
    retry:
      retry: {attempts: 3}
EOF
}

router_serves() {
  curl -fsS "http://$ROUTER_PING/ping" &&
    # No route matches: 404, served with the platform's certificate.
    [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ENTRYPOINT_CA" "https://localhost:$CLUSTER_HTTPS_PORT/")" = 404 ]
}

start_router() {
  make_entrypoint_tls
  issue router /CN=cloudservice:router
  write_kubeconfig router router
  kubectl apply -f "$ROOT_DIR/platform/cluster/router.yaml" >/dev/null
  write_router_config
  KUBECONFIG=$CLUSTER_DIR/router.kubeconfig start_daemon traefik "$TRAEFIK_BIN" "--configFile=$ROUTER_CONFIG"
  wait_healthy traefik 60 router_serves
}
