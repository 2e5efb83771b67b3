#!/usr/bin/env bash
# Starts the local platform: the Docker engine, an authenticated registry on 127.0.0.1:$REGISTRY_PORT,
# the images every stack builds on, made here and never pulled: the Debian base (debootstrap) and
# the Kubernetes pause image (FROM scratch) and the Docker router's image (router.sh, with the entry
# point's local CA and certificate), and PostgreSQL for shared Pulumi state (database.sh).
# Idempotent: a warm run takes seconds.
# platform/down.sh stops what this starts (pid files under $STATE_DIR).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$ROOT_DIR/platform/router.sh"

unset DOCKER_HOST        # the engine started here listens on the default socket
export DOCKER_BUILDKIT=0 # the Debian engine and this CLI share no BuildKit: classic builder

APT_PACKAGES=(docker.io docker-registry debootstrap apache2-utils gcc libc6-dev curl)
DOCKER_DIR=$STATE_DIR/docker
REGISTRY_DIR=$STATE_DIR/registry
CREDENTIALS=$REGISTRY_DIR/credentials.env
REGISTRY=localhost:$REGISTRY_PORT
REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
DAEMON_EXES[registry]=docker-registry
# The cached rootfs is keyed by everything that goes into it; bump recipe= when build_rootfs changes.
BASE_KEY=$(printf '%s\n' "suite=$DEBIAN_SUITE" variant=minbase "include=$BASE_PACKAGES" recipe=1 | sha256sum | cut -c1-12)
BASE_TAR=$CACHE_DIR/base/rootfs-$DEBIAN_SUITE-$BASE_KEY.tar
PAUSE_SRC=$ROOT_DIR/platform/images/pause
PAUSE_KEY=$(cat "$PAUSE_SRC/pause.c" "$PAUSE_SRC/Dockerfile" | sha256sum | cut -c1-12)

# image_label IMAGE LABEL: prints LABEL of the local IMAGE (nothing when the image is missing).
image_label() {
  docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# dockerd writes its own pid file (--pidfile), so it is started here rather than by start_daemon.
start_docker() {
  local RUN_DIR=$DOCKER_DIR LOG_DIR=$DOCKER_DIR pid
  if docker info >/dev/null 2>&1; then
    if pid=$(pid_of dockerd); then
      log "Docker engine already running (pid $pid)"
    else
      log "Using the Docker engine that was already running (platform/down.sh will leave it alone)"
    fi
    return
  fi
  pid_of dockerd >/dev/null && die "dockerd (pid $(pid_of dockerd)) is running but does not answer; see $DOCKER_DIR/dockerd.log"
  rm -f "$DOCKER_DIR/dockerd.pid"
  log "Starting dockerd (log: $DOCKER_DIR/dockerd.log)"
  setsid dockerd --pidfile "$DOCKER_DIR/dockerd.pid" </dev/null >>"$DOCKER_DIR/dockerd.log" 2>&1 &
  pid=$!
  until [ -s "$DOCKER_DIR/dockerd.pid" ]; do
    kill -0 "$pid" 2>/dev/null || die "dockerd exited; last lines of $DOCKER_DIR/dockerd.log:
$(tail -n 15 "$DOCKER_DIR/dockerd.log")"
    sleep 0.2
  done
  wait_healthy dockerd 60 docker info
  log "Docker engine $(docker version --format '{{.Server.Version}}') is up (pid $(pid_of dockerd))"
}

# Creates the registry credentials once, and the htpasswd file and config that match them; a running
# registry is stopped when they change, to be started again with them.
configure_registry() {
  mkdir -p "$REGISTRY_DIR/data"
  if [ ! -s "$CREDENTIALS" ]; then
    log "Generating registry credentials in $CREDENTIALS"
    (umask 077 && printf 'REGISTRY_SERVER=%s\nREGISTRY_USERNAME=%s\nREGISTRY_PASSWORD=%s\n' \
      "$REGISTRY" cloudservice "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')" >"$CREDENTIALS")
  fi
  chmod 600 "$CREDENTIALS"
  # shellcheck source=/dev/null
  source "$CREDENTIALS"
  local htpasswd=$REGISTRY_DIR/htpasswd config=$REGISTRY_DIR/config.yml
  if ! htpasswd -iv "$htpasswd" "$REGISTRY_USERNAME" <<<"$REGISTRY_PASSWORD" >/dev/null 2>&1; then
    htpasswd -iBc "$htpasswd" "$REGISTRY_USERNAME" <<<"$REGISTRY_PASSWORD" 2>/dev/null
    chmod 600 "$htpasswd"
    stop_daemon registry
  fi
  put_file "$config" registry <<EOF
# Written by scripts/platform.sh: the project's local registry, loopback only, password protected.
version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: cloudservice-registry
    path: $htpasswd
EOF
}

# registry_status [CURL-ARGS...]: HTTP status of the catalog (000 when nothing listens).
registry_status() { curl -s -o /dev/null -w '%{http_code}' "$@" "$REGISTRY_URL/v2/_catalog" || true; }
registry_up() { [ "$(registry_status)" = 401 ]; }

start_registry() {
  local RUN_DIR=$REGISTRY_DIR LOG_DIR=$REGISTRY_DIR
  configure_registry
  if ! pid_of registry >/dev/null; then
    [ "$(registry_status)" = 000 ] || die "something else already listens on 127.0.0.1:$REGISTRY_PORT"
  fi
  start_daemon registry docker-registry serve "$REGISTRY_DIR/config.yml"
  wait_healthy registry 20 registry_up
}

check_registry() {
  local anonymous authenticated
  anonymous=$(registry_status)
  authenticated=$(registry_status -u "$REGISTRY_USERNAME:$REGISTRY_PASSWORD")
  if [ "$anonymous" != 401 ] || [ "$authenticated" != 200 ]; then
    die "registry auth is not as expected: anonymous $anonymous (want 401), with credentials $authenticated (want 200)"
  fi
}

docker_login() {
  local config=${DOCKER_CONFIG:-$HOME/.docker}/config.json
  local auth
  auth=$(printf '%s:%s' "$REGISTRY_USERNAME" "$REGISTRY_PASSWORD" | base64 -w0)
  grep -qF "\"$auth\"" "$config" 2>/dev/null && return
  local out
  out=$(docker login "$REGISTRY" -u "$REGISTRY_USERNAME" --password-stdin <<<"$REGISTRY_PASSWORD" 2>&1) ||
    die "docker login $REGISTRY failed: $out"
  log "Logged the Docker CLI in to $REGISTRY"
}

# debootstrap's mirror: the first apt source of this machine that serves $DEBIAN_SUITE itself
# (deb822 .sources stanzas or one-line .list entries). DEBIAN_MIRROR overrides it.
debian_mirror() {
  local sources=() file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] && sources+=("$file")
  done
  [ "${#sources[@]}" -gt 0 ] || return 0
  awk -v suite="$DEBIAN_SUITE" '
    function stanza_end() { if (deb && uri != "" && has_suite) { print uri; found = 1; exit } deb = has_suite = 0; uri = "" }
    FNR == 1 || /^[[:space:]]*$/ { stanza_end() }
    /^[[:space:]]*#/ { next }
    $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                  if ($(i + 1) == suite) { print $i; found = 1; exit } }
    $1 == "Types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
    $1 == "URIs:" { uri = $2 }
    $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
    END { if (!found) stanza_end() }
  ' "${sources[@]}"
}

# remove_tree DIR: removes a (possibly half-built) chroot, unmounting whatever debootstrap left mounted.
remove_tree() {
  [ -e "$1" ] || return 0
  awk -v dir="$1/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf --one-file-system "$1"
}

build_rootfs() {
  local mirror=${DEBIAN_MIRROR:-$(debian_mirror)} dir=$CACHE_DIR/base/build-$BASE_KEY
  [ -n "$mirror" ] || die "no apt source serves '$DEBIAN_SUITE' on this machine; set DEBIAN_MIRROR=<url>"
  mkdir -p "$CACHE_DIR/base"
  remove_tree "$dir"
  with_progress "debootstrap $DEBIAN_SUITE minbase + $BASE_PACKAGES" run_logged "$CACHE_DIR/base/debootstrap.log" \
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$dir" "$mirror"
  # Package downloads and lists come back with `apt-get update`; the runtime provides DNS and hostname.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  : >"$dir/etc/resolv.conf"
  : >"$dir/etc/hostname"
  with_progress "Packing the rootfs into $BASE_TAR" \
    tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -C "$dir" -cf "$BASE_TAR.tmp" .
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  remove_tree "$dir"
}

build_base_image() {
  if [ "$(image_label "$BASE_IMAGE" org.cloudservice.rootfs)" = "$BASE_KEY" ]; then
    log "Base image $BASE_IMAGE is up to date"
    return
  fi
  [ -f "$BASE_TAR" ] || build_rootfs
  with_progress "Importing $BASE_IMAGE from the cached rootfs" \
    docker import --change "LABEL org.cloudservice.rootfs=$BASE_KEY" --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  docker run --rm --network none "$BASE_IMAGE" sh -c \
    'python3 -c "import ssl, sqlite3, json, asyncio, ctypes, lzma, venv" && redis-server --version' >/dev/null ||
    die "the new $BASE_IMAGE lacks python3's standard library or redis-server"
}

build_pause_image() {
  if [ "$(image_label "$PAUSE_IMAGE" org.cloudservice.source)" = "$PAUSE_KEY" ]; then
    log "Pause image $PAUSE_IMAGE is up to date"
    return
  fi
  log "Building $PAUSE_IMAGE from platform/images/pause (static C, FROM scratch)"
  local context
  context=$(mktemp -d)
  cp "$PAUSE_SRC/Dockerfile" "$context/"
  gcc -static -O2 -s -Wall -Wextra -Werror -o "$context/pause" "$PAUSE_SRC/pause.c"
  run_logged "$STATE_DIR/pause-build.log" \
    docker build --label "org.cloudservice.source=$PAUSE_KEY" -t "$PAUSE_IMAGE" "$context"
  rm -rf "$context"
}

# push_image IMAGE TARGET: tags IMAGE as TARGET and pushes it, unless the registry already serves it.
push_image() {
  local image=$1 target=$2 repo=${2%:*} served
  [ "$image" = "$target" ] || docker tag "$image" "$target"
  served=$(curl -fsI -u "$REGISTRY_USERNAME:$REGISTRY_PASSWORD" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "$REGISTRY_URL/v2/${repo#*/}/manifests/${target##*:}" | tr -d '\r' | sed -n 's/^docker-content-digest: //Ip' || true)
  if [ -n "$served" ] && docker image inspect --format '{{join .RepoDigests "\n"}}' "$target" | grep -qxF "$repo@$served"; then
    log "$target is already in the registry"
    return
  fi
  with_progress "Pushing $target" docker push -q "$target" >/dev/null
}

mkdir -p "$STATE_DIR" "$DOCKER_DIR" "$REGISTRY_DIR" "$CACHE_DIR"
install_packages "$STATE_DIR/apt.log" "${APT_PACKAGES[@]}"
start_docker
start_registry
check_registry
docker_login
build_base_image
push_image "$BASE_IMAGE" "$REGISTRY/$BASE_IMAGE"
build_pause_image
push_image "$PAUSE_IMAGE" "$PAUSE_IMAGE"
make_entrypoint_tls
build_router_image
"$ROOT_DIR/platform/database.sh" start
log "Platform ready: Docker engine on the default socket, registry $REGISTRY (credentials: $CREDENTIALS),"
log "  images $BASE_IMAGE, $REGISTRY/$BASE_IMAGE, $PAUSE_IMAGE, $ROUTER_IMAGE; PostgreSQL on 127.0.0.1:$POSTGRES_PORT"
log "  the entry point's local CA: $ENTRYPOINT_CA (e.g. curl --cacert $ENTRYPOINT_CA https://...)"
