# Builds the Kubernetes daemons from the published k8s.io/kubernetes Go module: sourced by cluster.sh.
# shellcheck shell=bash

# kubectl rides along (a few extra packages): the same version as the cluster, for scripts and tests.
K8S_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
# The cluster's own small helpers (platform/cluster/cmd), built in the same wrapper module with the
# client libraries of this Kubernetes version: see each main.go.
K8S_HELPERS=(cri-ready cri-reset local-volumes)
HELPERS_KEY=$(cat "$ROOT_DIR"/platform/cluster/cmd/*/*.go | sha256sum | cut -c1-12)

# k8s.io/kubernetes points its ~31 staging modules (k8s.io/api, k8s.io/client-go, ...) at local
# ./staging paths, which Go ignores in a dependency. A wrapper module re-points each of them at the
# published staging release, v0.<minor>.<patch> (v1.32.9 -> v0.32.9).
write_wrapper_go_mod() {
  local dir=$1 kube_mod staging_version=v0.${KUBERNETES_VERSION#*.}
  kube_mod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$kube_mod" ] || die "could not download k8s.io/kubernetes@v$KUBERNETES_VERSION from the Go module proxy"
  {
    printf 'module cloudservice.local/kubernetes\n\ngo 1.24\n\n'
    # Keep the runtime defaults Kubernetes itself is built with.
    grep '^godebug ' "$kube_mod"
    printf '\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$KUBERNETES_VERSION"
    sed -n 's|^\t\(k8s.io/[^ ]*\) => ./staging/src/.*|\t\1 => \1 '"$staging_version"'|p' "$kube_mod"
    printf ')\n'
  } >"$dir/go.mod"
  grep -q 'k8s.io/client-go => ' "$dir/go.mod" || die "no staging modules found in $kube_mod"
}

build_kubernetes() {
  local build_dir=$CACHE_DIR/kubernetes/v$KUBERNETES_VERSION/build pkg=k8s.io/kubernetes/cmd ldflags="-s -w" c
  local -a packages=()
  for c in "${K8S_COMPONENTS[@]}"; do packages+=("$pkg/$c@v$KUBERNETES_VERSION"); done
  # The same version stamps as Kubernetes' own hack/lib/version.sh, so /version and the node report v1.32.9.
  for c in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $c.gitVersion=v$KUBERNETES_VERSION -X $c.gitMajor=${KUBERNETES_VERSION%%.*}"
    ldflags+=" -X $c.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION") -X $c.gitTreeState=clean"
    ldflags+=" -X $c.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$build_dir" && rm -rf "${build_dir:?}/bin" "$build_dir/cmd"
  printf 'module cloudservice.local/kubernetes\n\ngo 1.24\n' >"$build_dir/go.mod"
  write_wrapper_go_mod "$build_dir"
  cp -r "$ROOT_DIR/platform/cluster/cmd" "$build_dir/"
  # One `go build` for all of them, so they share the compilation of the common packages.
  (cd "$build_dir" && go get "${packages[@]}" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$build_dir/bin/" "${packages[@]%@*}" \
      "${K8S_HELPERS[@]/#/./cmd/}")
  echo "$HELPERS_KEY" >"$build_dir/bin/helpers.key"
  # Publish atomically: an interrupted build never leaves a half-filled cache.
  rm -rf "$K8S_BIN_DIR" && mv "$build_dir/bin" "$K8S_BIN_DIR"
}

# Built: every binary is there, and the helpers from their current sources (a change to them makes
# an incremental rebuild of a minute or so; Go's build cache keeps the rest).
kubernetes_built() {
  local c
  for c in "${K8S_COMPONENTS[@]}" "${K8S_HELPERS[@]}"; do [ -x "$K8S_BIN_DIR/$c" ] || return 1; done
  [ "$(cat "$K8S_BIN_DIR/helpers.key" 2>/dev/null)" = "$HELPERS_KEY" ]
}

COREDNS_BIN=$CACHE_DIR/coredns/v$COREDNS_VERSION/bin/coredns

# CoreDNS from a wrapper module whose main (platform/cluster/coredns/main.go) links only the plugins
# the Corefile uses.
build_coredns() {
  local build_dir=$CACHE_DIR/coredns/v$COREDNS_VERSION/build
  mkdir -p "$build_dir"
  cp "$ROOT_DIR/platform/cluster/coredns/main.go" "$build_dir/"
  printf 'module cloudservice.local/coredns\n\ngo 1.24\n\nrequire github.com/coredns/coredns v%s\n' \
    "$COREDNS_VERSION" >"$build_dir/go.mod"
  (cd "$build_dir" && go mod tidy &&
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$build_dir/coredns" .)
  mkdir -p "${COREDNS_BIN%/*}" && mv "$build_dir/coredns" "$COREDNS_BIN"
}
