#!/usr/bin/env bash
# Builds the Pulumi CLI, the Python language host and the docker/kubernetes resource plugins from Go
# modules and `pulumi watch`'s helper from crates.io (no Pulumi downloads), caches them by version and
# installs the plugins into Pulumi's cache.
set -euo pipefail
source "$(dirname "$0")/../platform/lib.sh"

command -v go >/dev/null || die "Go is required to build the Pulumi toolchain offline (https://go.dev/dl)"

TOOLCHAIN_DIR=$CACHE_DIR/toolchain
BIN_DIR=$TOOLCHAIN_DIR/pulumi-v$PULUMI_VERSION/bin

# The CLI is built with our patches (toolchain/pulumi-cli/patches), each naming on its first line
# the module it changes (`Module: path@version`), cached by version and patches:
# - automatic-logging-opt-out.patch: PULUMI_DISABLE_AUTOMATIC_LOGGING (set by env.sh) turns off the log
#   every command writes to PULUMI_HOME/logs at debug level, which costs every preview and update CPU
#   (about 0.9 s of a 50-service up's 6 s in the CLI); -v and --logtostderr still log on demand;
# - zxcvbn-*lazy-word-lists.patch: the two password strength libraries the CLI links (its warnings
#   about weak secrets) parse their word lists when first asked, not at each start (90 ms of each command).
# It is built from a throwaway wrapper module, so pkg's local `replace` lines (which break
# `go install pkg@version`) give way to the published modules, and the patched ones to their copies.
build_pulumi_cli() {
  local patches=("$ROOT_DIR"/toolchain/pulumi-cli/patches/*.patch) build patch module path
  build=$(cat "${patches[@]}" | sha256sum | cut -c1-8)
  [ -x "$BIN_DIR/pulumi" ] && [ "$(cat "$BIN_DIR/.pulumi-patches" 2>/dev/null)" = "$build" ] && return
  local dir=$TOOLCHAIN_DIR/build/pulumi-cli cli=github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  rm -rf "$dir" && mkdir -p "$dir/modules"
  local go_mod=(
    "require github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION"
    "require github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION"
    "replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
  )
  for patch in "${patches[@]}"; do
    module=$(sed -n '1s/^Module: //p' "$patch") path=${module%@*}
    [ -n "$module" ] || die "$patch: its first line must name the module it patches (Module: path@version)"
    if [ ! -d "$dir/modules/$path" ]; then
      mkdir -p "$dir/modules/${path%/*}"
      go_module_copy "$module" "$dir/modules/$path"
      # A module from before Go modules has no go.mod, which a replacement directory needs.
      [ -f "$dir/modules/$path/go.mod" ] || echo "module $path" >"$dir/modules/$path/go.mod"
      go_mod+=("replace $path => ./modules/$path")
    fi
    (cd "$dir/modules/$path" && git apply "$patch")
  done
  printf 'module cloudservice.local/toolchain\n\ngo 1.25\n\n%s\n' "$(printf '%s\n' "${go_mod[@]}")" >"$dir/go.mod"
  (cd "$dir" && go get -tool "$cli@v$PULUMI_VERSION")
  # A patch is for one version: a CLI that links another (after a version bump) needs the patch redone.
  for patch in "${patches[@]}"; do
    module=$(sed -n '1s/^Module: //p' "$patch") path=${module%@*}
    [ "$(cd "$dir" && go list -m -f '{{.Version}}' "$path")" = "${module##*@}" ] ||
      die "$patch is for $module, but the CLI v$PULUMI_VERSION links $(cd "$dir" && go list -m -f '{{.Path}}@{{.Version}}' "$path"): redo the patch for that version"
  done
  (cd "$dir" && go build -trimpath -o "$BIN_DIR/pulumi.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" "$cli")
  # Renamed into place, so an interrupted build is never taken for a finished one.
  mv "$BIN_DIR/pulumi.tmp" "$BIN_DIR/pulumi"
  echo "$build" >"$BIN_DIR/.pulumi-patches"
}

# The provider's go.mod points its own SDK at a local path and its main package embeds schema files
# that are generated, not shipped: build from a writable copy with the published SDK instead.
build_kubernetes_provider() {
  local output=$TOOLCHAIN_DIR/kubernetes-v$PULUMI_KUBERNETES_VERSION/pulumi-resource-kubernetes
  [ -x "$output" ] && return
  local module=github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_KUBERNETES_PROVIDER_MODULE
  local source=$TOOLCHAIN_DIR/build/pulumi-kubernetes
  rm -rf "$source" && mkdir -p "${source%/*}"
  go_module_copy "$module" "$source"
  (
    cd "$source"
    go mod edit -dropreplace github.com/pulumi/pulumi-kubernetes/sdk/v4 \
      -require "github.com/pulumi/pulumi-kubernetes/sdk/v4@v$PULUMI_KUBERNETES_VERSION"
    cd cmd/pulumi-resource-kubernetes
    VERSION=$PULUMI_KUBERNETES_VERSION go run generate.go
    go build -trimpath -o "$output" \
      -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" .
  )
}

# Pulumi's Go language host for Python is not served by the Go module proxy: install ours beside
# the CLI, where the CLI looks for language hosts first, with a virtualenv of its own (the Pulumi
# SDK at the CLI's version, for the protocol), so it serves a project before it has a virtualenv.
install_language_host() {
  local venv=$TOOLCHAIN_DIR/pulumi-v$PULUMI_VERSION/python-language-host
  if [ "$(cat "$venv/.pulumi-version" 2>/dev/null)" != "$PULUMI_VERSION" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pulumi==$PULUMI_VERSION"
    echo "$PULUMI_VERSION" >"$venv/.pulumi-version"
  fi
  install -m 0755 "$ROOT_DIR"/toolchain/python-language-host/* "$BIN_DIR/"
}

# `pulumi watch` runs its file watcher, pulumi-watch, from beside the CLI. Pulumi only publishes it
# prebuilt: build its source (toolchain/pulumi-watch, Rust) with cargo and crates.io, cached by version.
build_pulumi_watch() {
  local output=$TOOLCHAIN_DIR/pulumi-watch-v$PULUMI_WATCH_VERSION/pulumi-watch
  if [ ! -x "$output" ]; then
    command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH  # rustup's default place
    command -v cargo >/dev/null || die "cargo (Rust) is required to build pulumi-watch offline (https://rustup.rs)"
    CARGO_TARGET_DIR=$TOOLCHAIN_DIR/build/pulumi-watch \
      cargo build --release --locked --quiet --manifest-path "$ROOT_DIR/toolchain/pulumi-watch/Cargo.toml"
    install -D -m 0755 "$TOOLCHAIN_DIR/build/pulumi-watch/release/pulumi-watch" "$output"
  fi
  install -m 0755 "$output" "$BIN_DIR/pulumi-watch"
}

# compose-loader (toolchain/compose-loader) loads a Compose project for components/config/compose.py with
# compose-go, as `docker compose config` does. Cached by version and by a hash of its sources (edits
# rebuild it), built from the committed go.sum alone, installed beside the CLI so programs find it.
build_compose_loader() {
  local source=$ROOT_DIR/toolchain/compose-loader hash output
  grep -q "compose-go/v2 v$COMPOSE_GO_VERSION\$" "$source/go.mod" ||
    die "toolchain/compose-loader/go.mod does not require compose-go v$COMPOSE_GO_VERSION (versions.env)"
  hash=$(cat "$source/main.go" "$source/go.mod" "$source/go.sum" | sha256sum | cut -c1-12)
  output=$TOOLCHAIN_DIR/compose-loader-v$COMPOSE_GO_VERSION-$hash/compose-loader
  if [ ! -x "$output" ]; then
    mkdir -p "${output%/*}"
    # Written next to the final name and renamed, so an interrupted build is never taken for a finished one.
    (cd "$source" && GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$output.tmp" .)
    mv "$output.tmp" "$output"
  fi
  install -m 0755 "$output" "$BIN_DIR/compose-loader"
}

# Puts a plugin binary into Pulumi's plugin cache (PULUMI_HOME, set by env.sh) at the exact version
# the Python SDK asks for, so the engine never tries to download it; again when our build of that
# version changed (a patch of ours).
install_plugin() {
  local name=$1 version=$2 binary=$3
  cmp -s "$binary" "$PULUMI_HOME/plugins/resource-$name-v$version/pulumi-resource-$name" && return
  pulumi plugin install resource "$name" "$version" --file "$binary" --reinstall
}

with_progress "Pulumi CLI v$PULUMI_VERSION" build_pulumi_cli
with_progress "compose-loader (compose-go v$COMPOSE_GO_VERSION)" build_compose_loader
with_progress "Python language host (virtualenv with the Pulumi SDK v$PULUMI_VERSION)" install_language_host
with_progress "pulumi-watch v$PULUMI_WATCH_VERSION (for \`pulumi watch\`)" build_pulumi_watch
with_progress "kubernetes resource plugin v$PULUMI_KUBERNETES_VERSION" build_kubernetes_provider

docker_plugin=$("$ROOT_DIR/toolchain/docker-provider/build.sh")

source "$ROOT_DIR/scripts/env.sh"
install_plugin docker "$PULUMI_DOCKER_VERSION" "$docker_plugin"
install_plugin kubernetes "$PULUMI_KUBERNETES_VERSION" "$TOOLCHAIN_DIR/kubernetes-v$PULUMI_KUBERNETES_VERSION/pulumi-resource-kubernetes"
log "toolchain ready: pulumi $(pulumi version); plugins:"
pulumi plugin ls
