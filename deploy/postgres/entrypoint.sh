#!/bin/sh
# Starts PostgreSQL for ghconnect. On the first start it creates the cluster
# in $PGDATA (a folder inside the volume at /var/lib/postgresql/data), the
# role ghconnect with the password read from $POSTGRES_PASSWORD_FILE (a
# compose secret), the database ghconnect (the registry's) and runs
# /etc/ghconnect/init.sql (the other services' databases). The cluster is
# made aside and renamed into place when complete, so an interrupted first
# start is simply redone. Listens on $PGLISTEN:$PGPORT; TCP logins need the
# password (scram-sha-256); the superuser postgres has none and logs in only
# over the socket in /tmp, inside the container.
set -eu
: "${POSTGRES_PASSWORD_FILE:=/run/secrets/pg-password}"
sock=/tmp

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -s "$POSTGRES_PASSWORD_FILE" ] || { echo "ghconnect-postgres: $POSTGRES_PASSWORD_FILE is missing or empty" >&2; exit 1; }
  new=$PGDATA.new
  rm -rf "$new"
  initdb -D "$new" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  pg_ctl -D "$new" -o "-c listen_addresses='' -c unix_socket_directories=$sock" -w -s start
  psql -h "$sock" -v ON_ERROR_STOP=1 -q -U postgres -d postgres <<SQL
\set pw \`cat "$POSTGRES_PASSWORD_FILE"\`
CREATE ROLE ghconnect LOGIN PASSWORD :'pw';
CREATE DATABASE ghconnect OWNER ghconnect;
SQL
  psql -h "$sock" -v ON_ERROR_STOP=1 -q -U postgres -d postgres -f /etc/ghconnect/init.sql
  pg_ctl -D "$new" -m fast -w -s stop
  rm -rf "$PGDATA"
  mv "$new" "$PGDATA"
  echo "ghconnect-postgres: cluster initialised"
fi
exec postgres -D "$PGDATA" -c listen_addresses="$PGLISTEN" -c port="$PGPORT" -c unix_socket_directories="$sock"
