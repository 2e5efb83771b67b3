#!/usr/bin/env bash
# PostgreSQL for shared Pulumi state (Pulumi's postgres:// backend): Debian's server on
# 127.0.0.1:$POSTGRES_PORT, password authentication (scram-sha-256), a `cloudservice` role that owns
# the `pulumi` database. Generated credentials: $STATE_DIR/postgres/credentials.env and a libpq
# passfile beside it (mode 600), next to the registry's. Idempotent.
# Usage: platform/database.sh [start|stop]   (platform/up.sh starts it, platform/down.sh stops it)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUN_DIR=$STATE_DIR/postgres
LOG_DIR=$RUN_DIR
CREDENTIALS=$RUN_DIR/credentials.env
PASSFILE=$RUN_DIR/pgpass

# PG_BIN: the newest installed server's programs. DATA_DIR: the server runs as Debian's `postgres`
# user (it refuses to run as root), which cannot enter root's home, so its data lives where Debian
# keeps its clusters, by major version (as Docker's lives in /var/lib/docker).
locate_server() {
  PG_BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -n 1)
  [ -x "$PG_BIN/postgres" ] || die "no PostgreSQL server in /usr/lib/postgresql (apt package postgresql)"
  DATA_DIR=/var/lib/postgresql/$(basename "$(dirname "$PG_BIN")")/cloudservice
}

# as_postgres COMMAND...: runs COMMAND as the postgres user, from a directory it may enter.
as_postgres() { (cd / && setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"); }

# Creates the credentials once: the role's password in credentials.env and in a libpq passfile, so
# clients (Pulumi's backend, psql) read it from there instead of a URL or a command line.
make_credentials() {
  if [ ! -s "$CREDENTIALS" ]; then
    log "Generating database credentials in $CREDENTIALS"
    (umask 077 && printf 'POSTGRES_USER=%s\nPOSTGRES_PASSWORD=%s\n' \
      cloudservice "$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')" >"$CREDENTIALS")
  fi
  chmod 600 "$CREDENTIALS"
  # shellcheck source=/dev/null
  source "$CREDENTIALS"
  (umask 077 && printf '127.0.0.1:%s:*:%s:%s\n' "$POSTGRES_PORT" "$POSTGRES_USER" "$POSTGRES_PASSWORD" >"$PASSFILE")
  # What a client needs besides the password; PULUMI_BACKEND_URL=$POSTGRES_URL switches Pulumi to it.
  sed -i '/^POSTGRES_\(HOST\|PORT\|DATABASE\|URL\)=/d' "$CREDENTIALS"
  printf "POSTGRES_HOST=127.0.0.1\nPOSTGRES_PORT=%s\nPOSTGRES_DATABASE=pulumi\nPOSTGRES_URL='%s'\n" "$POSTGRES_PORT" \
    "postgres://$POSTGRES_USER@127.0.0.1:$POSTGRES_PORT/pulumi?sslmode=disable&passfile=$PASSFILE" >>"$CREDENTIALS"
}

init_cluster() {
  [ -s "$DATA_DIR/PG_VERSION" ] && return
  log "Creating the database cluster in $DATA_DIR"
  install -d -o postgres -g postgres -m 700 "$DATA_DIR"
  run_logged "$LOG_DIR/initdb.log" as_postgres "$PG_BIN/initdb" -D "$DATA_DIR" --username=postgres \
    --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
}

# The role and the database, with the password of credentials.env (set again at every start, so a
# new password there takes effect), through the server's own socket as its superuser.
setup_role() {
  as_postgres psql -q -h "$DATA_DIR" -p "$POSTGRES_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -v user="$POSTGRES_USER" -v password="$POSTGRES_PASSWORD" -v database=pulumi >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'user')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
SQL
}

start() {
  install_packages "$STATE_DIR/apt.log" postgresql
  locate_server
  mkdir -p "$RUN_DIR"
  make_credentials
  init_cluster
  # Loopback only, and the server's socket in its own directory (Debian's /run/postgresql may not exist).
  start_daemon --user postgres postgres "$PG_BIN/postgres" -D "$DATA_DIR" -c listen_addresses=127.0.0.1 \
    -c "port=$POSTGRES_PORT" -c "unix_socket_directories=$DATA_DIR"
  wait_healthy postgres 60 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT"
  setup_role
  log "PostgreSQL ready on 127.0.0.1:$POSTGRES_PORT (database pulumi, credentials: $CREDENTIALS)"
}

case ${1:-start} in
  start) start ;;
  # SIGINT: PostgreSQL's fast shutdown (clients are disconnected, the data is flushed).
  stop) stop_daemon postgres 60 INT ;;
  *) die "usage: $0 [start|stop]" ;;
esac
