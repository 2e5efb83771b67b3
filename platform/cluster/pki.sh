# The cluster's certificates (openssl, ECDSA P-256, 10 years; make_ca and issue of platform/lib.sh)
# and kubeconfigs: sourced by cluster.sh.
# Everything is made once and kept in $PKI_DIR (mode 700); the node's serving certificates are
# re-issued when the node's name or address changes.
# shellcheck shell=bash

# write_kubeconfig NAME CERT: $CLUSTER_DIR/NAME.kubeconfig for CERT's identity, certificates inline.
write_kubeconfig() {
  local file=$CLUSTER_DIR/$1.kubeconfig cert=$PKI_DIR/$2
  [ -s "$file" ] && return
  (umask 077 && cat >"$file.tmp" <<EOF) && mv "$file.tmp" "$file"
apiVersion: v1
kind: Config
clusters:
- name: cloudservice
  cluster:
    server: $API_SERVER
    certificate-authority-data: $(base64 -w0 "$PKI_DIR/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$cert.crt")
    client-key-data: $(base64 -w0 "$cert.key")
contexts:
- name: cloudservice
  context:
    cluster: cloudservice
    user: $2
current-context: cloudservice
EOF
}

make_pki() {
  mkdir -p "$PKI_DIR" && chmod 700 "$PKI_DIR"
  [ -s "$PKI_DIR/ca.crt" ] || log "Creating the cluster CA and certificates in $PKI_DIR"
  make_ca ca cloudservice-kubernetes-ca
  # The apiserver's identity towards aggregated API servers, with a CA of its own (as kubeadm does).
  make_ca front-proxy-ca cloudservice-front-proxy-ca
  issue front-proxy-client /CN=front-proxy-client clientAuth "" front-proxy-ca
  if [ ! -s "$PKI_DIR/sa.pub" ]; then
    { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI_DIR/sa.key" &&
      openssl pkey -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub"; } 2>/dev/null ||
      die "could not create the service-account key pair"
  fi
  make_secrets_key

  local node_sans="DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
  if [ "$(cat "$PKI_DIR/node-sans" 2>/dev/null)" != "$node_sans" ]; then
    rm -f "$PKI_DIR"/{kube-apiserver,kubelet}.{crt,key} "$CLUSTER_DIR/kubelet.kubeconfig"
    echo "$node_sans" >"$PKI_DIR/node-sans"
  fi
  local domain=kubernetes.default.svc.$CLUSTER_DOMAIN
  issue kube-apiserver /CN=kube-apiserver serverAuth \
    "$node_sans,IP:$API_SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:$domain"
  # The kubelet's certificate both serves its API (checked by the apiserver) and logs it in as the node.
  issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth,serverAuth "$node_sans"
  issue apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client
  issue admin /O=system:masters/CN=cloudservice-admin
  issue kube-controller-manager /CN=system:kube-controller-manager
  issue kube-scheduler /CN=system:kube-scheduler
  issue kube-proxy /CN=system:kube-proxy
  issue coredns /CN=system:coredns
  issue local-volumes /CN=cloudservice:local-volumes
  issue kube-router /CN=system:kube-router

  write_kubeconfig admin admin
  local name
  for name in kubelet kube-controller-manager kube-scheduler kube-proxy coredns local-volumes kube-router; do
    write_kubeconfig "$name" "$name"
  done
}

# The key the API server encrypts Secrets in etcd with (secretbox: 32 random bytes, base64), made
# once. Never made again over encrypted data: without the key they are lost, so say so instead.
make_secrets_key() {
  [ -s "$SECRETS_KEY" ] && return
  [ ! -e "$SECRETS_ENCRYPTED_MARKER" ] ||
    die "$SECRETS_KEY is missing while etcd holds Secrets encrypted with it: restore it from a backup"
  (umask 077 && head -c 32 /dev/urandom | base64 >"$SECRETS_KEY.tmp") && mv "$SECRETS_KEY.tmp" "$SECRETS_KEY"
}
