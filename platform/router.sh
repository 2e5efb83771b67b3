# The app's one entry point, alike on both targets: Traefik (github.com/traefik/traefik/v3) is the
# cluster's ingress controller (platform/cluster/router.sh) and runs in the Docker router container
# (the image built here), and both serve https with the certificate of the platform's local CA.
# Sourced by platform/up.sh and platform/cluster/up.sh.
# shellcheck shell=bash

# Traefik with two changes of ours, each a patch beside this file:
# - traefik-retry-replayable.patch: its retry middleware sends a request again only if none of it was
#   written to the backend, so a GET in flight to a replica that dies is lost; patched, a request safe
#   to repeat (GET, HEAD, OPTIONS, TRACE without a body) is retried until the backend has begun to
#   answer, as nginx's proxy_next_upstream does.
# - traefik-file-reload-whole.patch: the Docker router's routes file is rewritten in place when the
#   routes change, and Traefik would load it at the moment it is empty (no routers, no certificate);
#   patched, an empty watched file keeps the current configuration.
# Cached by version and patches.
TRAEFIK_PATCHES=("$ROOT_DIR"/platform/traefik-*.patch)
TRAEFIK_BUILD=v$TRAEFIK_VERSION+cloudservice.$(cat "${TRAEFIK_PATCHES[@]}" | sha256sum | cut -c1-8)
TRAEFIK_BIN=$CACHE_DIR/traefik/$TRAEFIK_BUILD/bin/traefik
ROUTER_SRC=$ROOT_DIR/platform/images/router
# The entry point's local CA and its serving certificate: the CA's key never leaves this directory.
TLS_DIR=$STATE_DIR/tls
ENTRYPOINT_CA=$TLS_DIR/ca.crt
ENTRYPOINT_CERT=$TLS_DIR/localhost.crt
ENTRYPOINT_KEY=$TLS_DIR/localhost.key
# What the serving certificate covers. OpenSSL (curl, Python) accepts no wildcard right under a
# top-level name, so `*.localhost` serves Go and browser clients only; the cluster's default hosts,
# <namespace>.apps.localhost, are under `*.apps.localhost`, which every client accepts.
ENTRYPOINT_SANS="DNS:localhost,DNS:*.localhost,DNS:*.apps.localhost,IP:127.0.0.1"

# The dashboard's web UI is not built (no npm here): the API and the router do not need it.
build_traefik() {
  build_patched_go_module "github.com/traefik/traefik/v3@v$TRAEFIK_VERSION" ./cmd/traefik \
    github.com/traefik/traefik/v3/pkg/version "$TRAEFIK_BUILD" "$TRAEFIK_BIN" "${TRAEFIK_PATCHES[@]}"
}

ensure_traefik() {
  [ -x "$TRAEFIK_BIN" ] || with_progress "Building Traefik $TRAEFIK_BUILD (about 5 min cold)" \
    run_logged "$CACHE_DIR/traefik/$TRAEFIK_BUILD/build.log" build_traefik
}

# The local CA, made once, and trusted only for loopback names (name constraints): trusting it
# (curl --cacert, a browser) vouches for nothing else. Its serving certificate is re-issued when
# what it covers changes or it nears its end.
make_entrypoint_tls() {
  # shellcheck disable=SC2034 # where make_ca and issue write
  local PKI_DIR=$TLS_DIR
  mkdir -p "$TLS_DIR"
  if [ ! -s "$ENTRYPOINT_CA" ]; then
    log "Creating the entry point's local CA in $TLS_DIR"
    (umask 077 && make_ca ca "cloudservice local CA" -addext basicConstraints=critical,CA:TRUE,pathlen:0 \
      -addext keyUsage=critical,keyCertSign,cRLSign \
      -addext "nameConstraints=critical,permitted;DNS:localhost,permitted;IP:127.0.0.0/255.0.0.0")
    chmod 644 "$ENTRYPOINT_CA"
  fi
  if [ "$(cat "$TLS_DIR/localhost-sans" 2>/dev/null)" != "$ENTRYPOINT_SANS" ] ||
    ! openssl x509 -checkend $((30 * 86400)) -noout -in "$ENTRYPOINT_CERT" >/dev/null 2>&1; then
    rm -f "$ENTRYPOINT_CERT" "$ENTRYPOINT_KEY"
    echo "$ENTRYPOINT_SANS" >"$TLS_DIR/localhost-sans"
  fi
  (umask 077 && issue localhost /CN=localhost serverAuth "$ENTRYPOINT_SANS")
  chmod 644 "$ENTRYPOINT_CERT"
}

# The Docker router container's image: the base image with the Traefik binary, run as a non-root
# user; rebuilt when the recipe, the version or the base image changes. Never pushed: only the local
# engine runs it. (image_label: platform/up.sh.)
build_router_image() {
  local key context
  key=$({ cat "$ROUTER_SRC/Dockerfile"; echo "$TRAEFIK_BUILD"; docker image inspect --format '{{.Id}}' "$BASE_IMAGE"; } |
    sha256sum | cut -c1-12)
  if [ "$(image_label "$ROUTER_IMAGE" org.cloudservice.source)" = "$key" ]; then
    log "Router image $ROUTER_IMAGE is up to date"
    return
  fi
  [ "${ROUTER_IMAGE##*:}" = "$TRAEFIK_VERSION" ] || die "versions.env: ROUTER_IMAGE's tag must be TRAEFIK_VERSION ($TRAEFIK_VERSION)"
  ensure_traefik
  log "Building $ROUTER_IMAGE from platform/images/router (FROM $BASE_IMAGE)"
  context=$(mktemp -d)
  cp "$ROUTER_SRC/Dockerfile" "$TRAEFIK_BIN" "$context/"
  run_logged "$STATE_DIR/router-build.log" docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "org.cloudservice.source=$key" -t "$ROUTER_IMAGE" "$context"
  rm -rf "$context"
  docker run --rm --network none "$ROUTER_IMAGE" version >/dev/null || die "the new $ROUTER_IMAGE does not run traefik"
}
