# Paths, addresses and daemon helpers shared by cluster.sh and cluster-down.sh: sourced, never run.
# shellcheck shell=bash disable=SC2034

K8S_BIN_DIR=$CACHE_DIR/kubernetes/v$KUBERNETES_VERSION/bin
CLUSTER_DIR=$STATE_DIR/cluster
PKI_DIR=$CLUSTER_DIR/pki
LOG_DIR=$CLUSTER_DIR/logs
RUN_DIR=$CLUSTER_DIR/run
ADMIN_KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig
CONTAINERD_SOCK=$CLUSTER_DIR/containerd/containerd.sock

# Pods get 10.88.0.0/16 on the bridge cloudsvc0 (the host is 10.88.0.1, also the cluster DNS);
# Services get 10.96.0.0/16. Neither collides with Docker's 172.17.0.0/16.
POD_CIDR=10.88.0.0/16
POD_GATEWAY=10.88.0.1
CNI_BRIDGE=cloudsvc0
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
API_SERVER=https://127.0.0.1:6443
CLUSTER_DOMAIN=cluster.local

# Daemons in start order; cluster-down.sh stops them in reverse.
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns local-volumes)

kubectl() { "$K8S_BIN_DIR/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# pid_of NAME: prints the pid of our daemon NAME (per its pid file, checked against the process's
# executable so a recycled pid never counts), or fails.
pid_of() {
  local pid exe
  pid=$(cat "$RUN_DIR/$1.pid" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  exe=${exe% (deleted)} # a binary replaced by a rebuild, still running
  [ "${exe##*/}" = "$1" ] && echo "$pid"
}

# start_daemon NAME COMMAND...: runs COMMAND detached (own session, log in $LOG_DIR/NAME.log) unless
# NAME already runs it; a NAME that runs with other arguments is restarted.
start_daemon() {
  local name=$1 pid
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
  setsid "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
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

# stop_daemon NAME: SIGTERM, then SIGKILL after 30 s; removes the pid file.
stop_daemon() {
  local name=$1 pid i
  if pid=$(pid_of "$name"); then
    log "Stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      readlink "/proc/$pid/exe" >/dev/null 2>&1 || break
      sleep 0.2
    done
    if readlink "/proc/$pid/exe" >/dev/null 2>&1; then
      log "$name did not stop within 30s: killing it"
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

# clean_leftovers: what a stopped or crashed containerd may have left: orphaned shims of ours (found by
# our socket, so Docker's are never touched) and mounts under the cluster's directory.
clean_leftovers() {
  local cmdline pid exe
  for cmdline in /proc/[0-9]*/cmdline; do
    pid=${cmdline#/proc/} pid=${pid%/cmdline}
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    [[ ${exe##*/} == containerd-shim* ]] || continue
    grep -qsF -- "$CONTAINERD_SOCK" "$cmdline" || continue
    log "Killing leftover shim of the cluster's containerd (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
  done
  awk -v dir="$CLUSTER_DIR/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r |
    xargs -r -n1 umount -l
}

# forward_rules add|delete: Docker sets the FORWARD policy to DROP; these let pod traffic through.
forward_rules() {
  local dir
  for dir in -s -d; do
    local rule=(FORWARD "$dir" "$POD_CIDR" -m comment --comment cloudservice-cluster -j ACCEPT)
    if iptables -C "${rule[@]}" 2>/dev/null; then
      [ "$1" = delete ] && iptables -D "${rule[@]}"
    else
      [ "$1" = add ] && iptables -I "${rule[@]}"
    fi
  done
  return 0
}
