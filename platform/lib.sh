# The one set of helpers of the project's scripts (platform/, toolchain/, scripts/): sourced, never run.
# shellcheck shell=bash

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../versions.env
source "$ROOT_DIR/versions.env"

# Long builds and platform state live outside the checkout, so fresh clones reuse them.
CACHE_DIR=${CLOUDSERVICE_CACHE:-$HOME/.cache/cloudservice}
STATE_DIR=${CLOUDSERVICE_STATE:-$HOME/.local/state/cloudservice}

export GOTOOLCHAIN=local GOFLAGS=-mod=mod

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Runs a command with a timer and a heartbeat line every 30 s, so long builds show they are alive.
with_progress() {
  local what=$1; shift
  local start=$SECONDS
  log "$what ..."
  ( while sleep 30; do log "  ... $what: $((SECONDS - start))s"; done ) &
  local ticker=$!
  local rc
  # In a subshell with errexit of its own: run on the left of `||`, a function would run with
  # errexit off, and a failed step inside it would go on.
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  [ "$rc" -eq 0 ] || die "$what failed (exit $rc)"
  log "$what done in $((SECONDS - start))s"
}

# run_logged LOG COMMAND...: runs COMMAND (in a subshell) with its output in LOG, shown only on failure.
run_logged() {
  local file=$1 rc=0
  shift
  mkdir -p "${file%/*}"
  ("$@") >"$file" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { tail -n 25 "$file" >&2; log "full log: $file"; }
  return "$rc"
}

# go_module_copy MODULE@VERSION DIR: a writable copy, in DIR, of a module's source from the Go module
# proxy, for what `go install module@version` can't build (replace lines, a patch of ours).
go_module_copy() {
  local source
  source=$(cd "${2%/*}" && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$source" ] || die "could not download $1 from the Go module proxy"
  cp -r "$source" "$2" && chmod -R u+w "$2"
}

# build_patched_go_module MODULE@VERSION PACKAGE STAMP VERSION BIN PATCH...: builds PACKAGE of the
# module in a copy with our PATCHes applied (a module whose go.mod has replace lines, which
# `go install module@version` refuses), stamped as its own Makefile does (STAMP.Version, STAMP.BuildDate),
# into BIN (.../bin/NAME in the cache; it builds beside, in .../build). Published whole or not at
# all: an interrupted build never leaves a half-written binary in the cache.
build_patched_go_module() {
  local module=$1 package=$2 stamp=$3 version=$4 bin=$5
  shift 5
  local build_dir=${bin%/bin/*}/build
  rm -rf "$build_dir" && mkdir -p "$build_dir"
  go_module_copy "$module" "$build_dir/src"
  (cd "$build_dir/src" && git apply --verbose "$@" &&
    CGO_ENABLED=0 go build -trimpath -o "$build_dir/${bin##*/}" \
      -ldflags "-s -w -X $stamp.Version=$version -X $stamp.BuildDate=1970-01-01T00:00:00Z" "$package")
  mkdir -p "${bin%/*}" && mv "$build_dir/${bin##*/}" "$bin"
  rm -rf "$build_dir"
}

# install_packages LOG PACKAGE...: installs the Debian packages that are missing (apt-get update
# only when the first attempt fails, e.g. on a machine whose package lists were never fetched).
install_packages() {
  local file=$1 missing=() package
  shift
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ "${#missing[@]}" -eq 0 ] && return
  export DEBIAN_FRONTEND=noninteractive
  with_progress "Installing ${missing[*]} (apt)" run_logged "$file" sh -c \
    'apt-get install -y --no-install-recommends "$@" || { apt-get update && apt-get install -y --no-install-recommends "$@"; }' \
    apt "${missing[@]}"
}

# -- certificates ----------------------------------------------------------------------------------
# openssl, ECDSA P-256, 10 years; each part of the platform sets PKI_DIR to its own directory.

# make_ca NAME CN [OPENSSL-ARGS...]: a self-signed CA, NAME.key and NAME.crt in $PKI_DIR, unless
# present; OPENSSL-ARGS add to `openssl req` (e.g. -addext for name constraints).
make_ca() {
  [ -s "$PKI_DIR/$1.crt" ] && return
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=$2" -keyout "$PKI_DIR/$1.key" -out "$PKI_DIR/$1.crt" "${@:3}" 2>/dev/null || die "could not create the $1 CA"
}

# issue NAME SUBJECT [USAGE] [SANS] [CA]: NAME.key and NAME.crt in $PKI_DIR signed by CA (`ca` by
# default), unless present. USAGE is the extended key usage (clientAuth by default); SANS the
# subjectAltName list.
issue() {
  local name=$1 subject=$2 usage=${3:-clientAuth} sans=${4:-} ca=$PKI_DIR/${5:-ca}
  [ -s "$PKI_DIR/$name.crt" ] && return
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subject" \
    -keyout "$PKI_DIR/$name.key" 2>/dev/null |
    openssl x509 -req -days 3650 -CA "$ca.crt" -CAkey "$ca.key" \
      -CAserial "$ca.srl" -CAcreateserial -out "$PKI_DIR/$name.crt" -extfile <(
        echo basicConstraints=critical,CA:FALSE
        echo keyUsage=critical,digitalSignature,keyEncipherment
        echo "extendedKeyUsage=$usage"
        [ -z "$sans" ] || echo "subjectAltName=$sans"
      ) 2>/dev/null || die "could not issue the $name certificate"
}

# -- daemons -------------------------------------------------------------------------------------
# A daemon NAME of the platform runs detached (own session) with its pid in $RUN_DIR/NAME.pid and its
# output in $LOG_DIR/NAME.log; each part of the platform sets RUN_DIR and LOG_DIR to its own
# directories. Its executable is called NAME unless DAEMON_EXES[NAME] says otherwise.
declare -gA DAEMON_EXES=()

# pid_of NAME: prints the pid of our daemon NAME (per its pid file, checked against the process's
# executable so a recycled pid never counts), or fails.
pid_of() {
  local pid exe
  pid=$(cat "$RUN_DIR/$1.pid" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  exe=${exe% (deleted)} # a binary replaced by a rebuild or an upgrade, still running
  [ "${exe##*/}" = "${DAEMON_EXES[$1]:-$1}" ] && echo "$pid"
}

# Closes every file descriptor of this shell but 0, 1 and 2.
close_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-"; fi
  done
}

# start_daemon [--user USER] NAME COMMAND...: runs COMMAND detached (as USER if given) unless NAME
# already runs it; a NAME that runs with other arguments, or a rebuilt binary, is restarted.
start_daemon() {
  local user=() name pid
  if [ "$1" = --user ]; then
    user=(setpriv "--reuid=$2" "--regid=$2" --init-groups --)
    shift 2
  fi
  name=$1
  shift
  if pid=$(pid_of "$name"); then
    if [ "$(tr '\0' '\n' <"/proc/$pid/cmdline")" != "$(printf '%s\n' "$@")" ]; then
      log "$name runs with other arguments: restarting it"
      stop_daemon "$name"
    elif [[ $(readlink "/proc/$pid/exe") == *" (deleted)" ]]; then
      log "$name was rebuilt: restarting it"
      stop_daemon "$name"
    else
      log "$name already running (pid $pid)"
      return
    fi
  fi
  log "Starting $name (log: $LOG_DIR/$name.log)"
  printf '\n--- %s: %s\n' "$(date -Is)" "$*" >>"$LOG_DIR/$name.log"
  # Only stdin/out/err: a daemon that kept the caller's other descriptors would hold its locks and
  # pipes (a `flock` around `make platform`, a `| tail`) open for as long as it runs.
  (
    close_inherited_fds
    exec setsid "${user[@]}" "$@"
  ) </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
  # The background shell becomes the daemon only once setsid has exec'd it; until then pid_of sees
  # a shell. Wait for that (briefly), so a loaded machine never reports a starting daemon as exited.
  local tries=50
  until pid_of "$name" >/dev/null || ((--tries == 0)); do sleep 0.1; done
}

# wait_healthy NAME SECONDS COMMAND...: polls COMMAND until it succeeds; fails with the end of NAME's
# log when NAME exits or SECONDS pass.
wait_healthy() {
  local name=$1 timeout=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    pid_of "$name" >/dev/null || die "$name exited; last lines of $LOG_DIR/$name.log:
$(tail -n 20 "$LOG_DIR/$name.log")"
    ((SECONDS - start < timeout)) || die "$name not healthy after ${timeout}s ($*); last lines of $LOG_DIR/$name.log:
$(tail -n 20 "$LOG_DIR/$name.log")"
    sleep 1
  done
}

# stop_daemon NAME [SECONDS] [SIGNAL]: SIGNAL (default TERM), then SIGKILL after SECONDS (default
# 30); removes the pid file.
stop_daemon() {
  local name=$1 timeout=${2:-30} signal=${3:-TERM} pid i
  if pid=$(pid_of "$name"); then
    log "Stopping $name (pid $pid)"
    kill "-$signal" "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 5; i++)); do
      readlink "/proc/$pid/exe" >/dev/null 2>&1 || break
      sleep 0.2
    done
    if readlink "/proc/$pid/exe" >/dev/null 2>&1; then
      log "$name did not stop within ${timeout}s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$RUN_DIR/$name.pid"
}

# put_file FILE DAEMON: writes stdin to FILE (mode 600) unless FILE already holds exactly that, so
# daemons that watch their configuration see no change; when it does change while DAEMON runs,
# DAEMON is stopped, to be started again with the new file.
put_file() {
  local file=$1 daemon=$2 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return
  fi
  mv "$tmp" "$file"
  if pid_of "$daemon" >/dev/null; then
    log "${file##*/} changed: restarting $daemon"
    stop_daemon "$daemon"
  fi
}
