# Configuration files of the cluster's daemons, written under $CLUSTER_DIR: sourced by cluster.sh.
# shellcheck shell=bash

# containerd: a second instance next to Docker's, with its own socket, root and state, the CRI plugin,
# runc with cgroupfs, the CNI network below, and the local registry (plain http on loopback). Like a
# real cluster's node it holds no registry credentials: pods pull with their imagePullSecret.
write_containerd_config() {
  local dir=$CLUSTER_DIR/containerd cri='plugins."io.containerd.grpc.v1.cri"'
  mkdir -p "$dir"
  put_file "$dir/config.toml" containerd <<EOF
# Written by scripts/cluster.sh.
version = 2
root = "$dir/root"
state = "$dir/state"
# Snapshotters that cannot work here (they only log errors at every start).
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[$cri]
  sandbox_image = "$PAUSE_IMAGE"
  # Pod network namespaces under the state dir rather than /run/netns: all in one place.
  netns_mounts_under_state_dir = true
  # No CAP_SYS_RESOURCE in this sandbox: oom_score_adj cannot go below ours (0), while the kubelet
  # asks -998 for pod sandboxes and -997 for Guaranteed pods. Clamp instead of failing every pod.
  restrict_oom_score_adj = true
  [$cri.containerd]
    default_runtime_name = "runc"
    [$cri.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [$cri.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/state/runc"
  [$cri.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_DIR/cni/net.d"
  [$cri.registry.mirrors."$REGISTRY_SERVER"]
    endpoint = ["http://$REGISTRY_SERVER"]
EOF
}

# The one image the node needs for itself, the pod sandbox (pause), comes from the Docker engine rather
# than from the registry, which the node has no credentials for. Imported at every start: it is tiny.
import_pause_image() {
  docker image save "$PAUSE_IMAGE" | ctr --address "$CONTAINERD_SOCK" --namespace k8s.io images import - >/dev/null ||
    die "could not import the pause image $PAUSE_IMAGE into the cluster's containerd (run \`make platform\` first)"
}

# The pod network: one bridge, host-local addresses from $POD_CIDR, masquerade for traffic leaving it.
write_cni_config() {
  mkdir -p "$CLUSTER_DIR/cni/net.d"
  put_file "$CLUSTER_DIR/cni/net.d/10-cloudservice.conflist" containerd <<EOF
{
  "cniVersion": "1.0.0",
  "name": "cloudservice",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$CLUSTER_DIR/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

write_kubelet_config() {
  put_file "$CLUSTER_DIR/kubelet.yaml" kubelet <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI_DIR/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI_DIR/kubelet.crt"
tlsPrivateKeyFile: "$PKI_DIR/kubelet.key"
cgroupDriver: cgroupfs
failSwapOn: false
# No CAP_SYS_RESOURCE here: the kubelet cannot lower its own OOM score (default -999).
oomScoreAdj: 0
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$POD_GATEWAY]
resolvConf: /etc/resolv.conf
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
podLogsDir: "$CLUSTER_DIR/pod-logs"
serializeImagePulls: false
# A shared build machine: evict only when really short, never for a busy but large disk.
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, nodefs.inodesFree: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
EOF
}

write_kube_proxy_config() {
  put_file "$CLUSTER_DIR/kube-proxy.yaml" kube-proxy <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$CLUSTER_DIR/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [127.0.0.0/8, $NODE_IP/32]
# Leave the machine's conntrack table size alone.
conntrack: {maxPerCore: 0}
EOF
}

# CoreDNS runs on the host, on the bridge's address, and answers for Services and pods of the cluster;
# other names go to the host's resolvers.
write_corefile() {
  put_file "$CLUSTER_DIR/Corefile" coredns <<EOF
.:53 {
    bind $POD_GATEWAY
    errors
    ready 127.0.0.1:8181
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $CLUSTER_DIR/coredns.kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    forward . /etc/resolv.conf
    cache 30
    loadbalance
}
EOF
}

# Secrets are written encrypted (secretbox, the key of make_secrets_key); `identity` last keeps those
# stored in plaintext before readable until encrypt_stored_secrets rewrites them.
write_encryption_config() {
  put_file "$ENCRYPTION_CONFIG" kube-apiserver <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - secretbox:
          keys:
            - name: $SECRETS_KEY_NAME
              secret: $(cat "$SECRETS_KEY")
      - identity: {}
EOF
}
