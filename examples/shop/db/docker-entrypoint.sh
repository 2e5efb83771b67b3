#!/bin/sh
# Creates the database cluster on the first start (empty $PGDATA), then runs the command, as the
# postgres user: started as root, it hands over first (PostgreSQL refuses to run as root).
set -eu

if [ "$(id -u)" = 0 ]; then
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "initialising $PGDATA for user $PGUSER, database $PGDATABASE"
  initdb --username="$PGUSER" --pwfile="$DB_PASSWORD_FILE" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 --pgdata="$PGDATA" >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --wait --silent \
    --options="-c listen_addresses='' -c unix_socket_directories=/tmp" start
  psql --host=/tmp --dbname=postgres --quiet --command="CREATE DATABASE \"$PGDATABASE\""
  pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
fi
exec "$@"
