#!/usr/bin/env bash
# test-postgres.sh CMD…: runs CMD with a PostgreSQL for the tests.
#
# GHCONNECT_TEST_POSTGRES names it (default postgres://postgres@127.0.0.1:5432/
# postgres?sslmode=disable; "off" runs CMD as it is). When something answers
# at its host and port, that server is used, as before. When nothing does
# and the host is loopback, this script starts one there: Debian's
# postgresql (installed with apt when missing), a data folder of its own,
# trust authentication, durability off (a test server). It is stopped by
# PID, and its folder removed, when CMD ends, also on failure or Ctrl-C.
# CMD's exit status is the script's.
set -euo pipefail
dsn=${GHCONNECT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
if [ "$dsn" = off ]; then exec "$@"; fi

# host:port of the DSN (a URL; no port means 5432).
hostport=$(sed -E 's#^[a-z]+://([^@/]*@)?([^/?]*).*#\2#' <<<"$dsn")
host=${hostport%:*}
port=${hostport##*:}
[ "$host" != "$hostport" ] || port=5432
answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
if answers; then
  export GHCONNECT_TEST_POSTGRES=$dsn
  exec "$@"
fi
case $host in
  127.*|localhost) ;;
  *) echo "test-postgres: nothing answers at $hostport, and it is not this machine's to start" >&2; exit 1 ;;
esac

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bindir" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-postgres: PostgreSQL is not installed: install Debian's postgresql (as root: apt-get install postgresql), or point GHCONNECT_TEST_POSTGRES at a server" >&2
    exit 1
  fi
  echo "test-postgres: installing Debian's postgresql…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi

# PostgreSQL refuses to run as root: as root, its files and process
# belong to the package's postgres user.
dir=$(mktemp -d "${TMPDIR:-/tmp}/ghconnect-test-postgres.XXXXXX")
as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$dir"
  as=(runuser -u postgres --)
fi
pid=
pgpid=
stop() {
  # The server's own process first (as root, $pid is runuser's).
  if [ -n "$pgpid" ]; then kill -TERM "$pgpid" 2>/dev/null || true; fi
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    # A fast shutdown; wait for it, then make sure.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    if [ -n "$pgpid" ]; then
      for _ in $(seq 1 50); do kill -0 "$pgpid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pgpid" 2>/dev/null || true
    fi
    echo "test-postgres: stopped PostgreSQL (pid ${pgpid:-$pid})" >&2
  fi
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

"${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
"${as[@]}" "$bindir/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" \
  -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200 >"$dir/postgres.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  answers && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }
  sleep 0.1
done
answers || { echo "test-postgres: PostgreSQL did not answer at 127.0.0.1:$port" >&2; cat "$dir/postgres.log" >&2; exit 1; }
pgpid=$(head -n1 "$dir/data/postmaster.pid")
echo "test-postgres: started PostgreSQL (pid $pgpid) at 127.0.0.1:$port, data in $dir" >&2
export GHCONNECT_TEST_POSTGRES=$dsn
set +e
"$@"
status=$?
set -e
exit "$status"
