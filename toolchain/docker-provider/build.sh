#!/usr/bin/env bash
# Builds the Pulumi docker resource plugin (pulumi-resource-docker) from Go modules: the kreuzwerker
# Terraform provider bridged with pulumi-terraform-bridge (toolchain/docker-provider), mapped like
# pulumi-docker so the PyPI `pulumi-docker` SDK works against it. pulumi-docker's own Go module is not
# available, hence this build. Cached by version; a warm run only checks that the binary is there.
#
# Usage: toolchain/docker-provider/build.sh   (prints the plugin's path on stdout)
# Install it for Pulumi with: pulumi plugin install resource docker "$VERSION" --file <path>
set -euo pipefail
source "$(dirname "$0")/../../platform/lib.sh"

# The plugin must report the version of the PyPI SDK: the SDK asks the engine for exactly that plugin.
VERSION=$PULUMI_DOCKER_VERSION
SRC_DIR=$ROOT_DIR/toolchain/docker-provider
# The upstream provider with our patches (patches/), each saving what `docker` by hand does not spend:
# - network-read.patch: a new network is looked at once instead of after 2 s, which every container
#   of a fresh stack waited for (only an overlay network's options come late; looked at again as before);
# - container-image-lookup.patch: a container whose image the engine has is created without listing
#   every image on the engine first (one list per container, tens of ms each on a busy engine).
# Cached by version and patches.
UPSTREAM_PATCHES=("$SRC_DIR"/patches/*.patch)
# The path the bridge imports the provider by; go.mod replaces it with kreuzwerker's module.
UPSTREAM=github.com/terraform-providers/terraform-provider-docker
BUILD=v$VERSION+cloudservice.$(cat "${UPSTREAM_PATCHES[@]}" | sha256sum | cut -c1-8)
OUT_DIR=$CACHE_DIR/toolchain/docker-provider-$BUILD
WORK_DIR=$CACHE_DIR/toolchain/build/docker-provider
BIN=$OUT_DIR/pulumi-resource-docker

if [ -x "$BIN" ]; then
  log "docker provider v$VERSION already built: $BIN"
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || die "Go is required to build the docker provider offline (https://go.dev/dl)"

# no_compose: leaves out upstream's docker_compose resource (plugin-framework only, not bridged), whose
# docker/compose dependency tree is large. -trimpath on both binaries so they share the build cache.
GO_BUILD=(go build -tags no_compose -trimpath -ldflags "-s -w -X main.version=$VERSION")

# Build from a copy: the generated schema.json is embedded from the package directory, and the
# checkout stays untouched.
rm -rf "$WORK_DIR" && mkdir -p "$(dirname "$WORK_DIR")" "$OUT_DIR"
cp -R "$SRC_DIR" "$WORK_DIR"
cd "$WORK_DIR"
go_module_copy "$(go list -m -f '{{.Replace.Path}}@{{.Replace.Version}}' "$UPSTREAM")" "$WORK_DIR/upstream"
(cd upstream && git apply --verbose "${UPSTREAM_PATCHES[@]}")
go mod edit -replace "$UPSTREAM=./upstream"

log "Building pulumi-resource-docker $BUILD (cold: ~7 min on 2 cores, most of it the schema generator)"
with_progress "Building the schema generator (pulumi-tfgen-docker)" \
  "${GO_BUILD[@]}" -o "$WORK_DIR/bin/pulumi-tfgen-docker" ./cmd/pulumi-tfgen-docker

# --skip-examples: converting the docs' HCL examples needs `pulumi convert` and the terraform converter
# plugin; examples only matter for generated SDK docs, not for the plugin.
generate_schema() {
  DOCKER_PROVIDER_UPSTREAM_DIR=$WORK_DIR/upstream \
    "$WORK_DIR/bin/pulumi-tfgen-docker" schema --skip-examples --out "$WORK_DIR/schema" >"$WORK_DIR/tfgen.log" 2>&1 ||
    { cat "$WORK_DIR/tfgen.log" >&2; return 1; }
  cp "$WORK_DIR/schema/schema.json" cmd/pulumi-resource-docker/schema.json
}
with_progress "Generating the Pulumi schema" generate_schema

# Written next to the final name and renamed, so an interrupted build is never taken for a finished one.
with_progress "Building pulumi-resource-docker" \
  "${GO_BUILD[@]}" -o "$BIN.tmp" ./cmd/pulumi-resource-docker
cp "$WORK_DIR/schema/schema.json" "$OUT_DIR/schema.json"
mv "$BIN.tmp" "$BIN"
[ "$("$BIN" -version)" = "$VERSION" ] || die "built plugin does not report version $VERSION"
log "docker provider v$VERSION: $BIN"
echo "$BIN"
