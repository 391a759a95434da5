#!/usr/bin/env bash
# Builds and starts ghconnect on this machine with the embedded defaults:
# each service on a loopback port, data under .data/ (kept across runs).
# Prints the gateway URL and the admin token; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

DATA=${GHCONNECT_DATA:-.data}
LOGS=$DATA/logs
GATEWAY_ADDR=${GHCONNECT_GATEWAY_ADDR:-127.0.0.1:8080}
mkdir -p "$DATA" "$LOGS" bin
chmod 700 "$DATA"

echo "building…"
go build -o bin/ ./services/registry/cmd/registry ./services/registry/cmd/mintlicense ./services/gateway/cmd/gateway \
  ./services/featuregate/cmd/featuregate

# Bearer tokens live only in $DATA/<principal>-token (mode 600); the
# services get their SHA-256 in $DATA/tokens.
: > "$DATA/tokens"
for principal in admin featuregate; do
  if [ ! -s "$DATA/$principal-token" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 > "$DATA/$principal-token")
  fi
  printf '%s sha256:%s\n' "$principal" "$(tr -d '\n' < "$DATA/$principal-token" | sha256sum | cut -d' ' -f1)" >> "$DATA/tokens"
done
token=$(cat "$DATA/admin-token")

# A development license, signed by a development issuer key.
if [ ! -s "$DATA/dev.ghl" ]; then
  bin/mintlicense -issuer-key "$DATA/license-issuer.key" -issuers-out "$DATA/license-issuers.txt" \
    -customer "Octo Corp" -seats 500 > "$DATA/dev.ghl"
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping…"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

start() { # name, then the command
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
}

wait_ok() { # name, url
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not become healthy; see $LOGS/$1.log" >&2
  tail -n 20 "$LOGS/$1.log" >&2 || true
  exit 1
}

start registry bin/registry -grpc-addr 127.0.0.1:7001 -http-addr 127.0.0.1:7101 \
  -database "sqlite:$DATA/registry.db" -tokens-file "$DATA/tokens" -license-issuers "$DATA/license-issuers.txt"
wait_ok registry http://127.0.0.1:7101/readyz
start featuregate bin/featuregate -grpc-addr 127.0.0.1:7003 -http-addr 127.0.0.1:7103 \
  -database "sqlite:$DATA/featuregate.db" -tokens-file "$DATA/tokens" \
  -registry-addr 127.0.0.1:7001 -registry-token-file "$DATA/featuregate-token"
wait_ok featuregate http://127.0.0.1:7103/readyz
start gateway bin/gateway -addr "$GATEWAY_ADDR" -registry-addr 127.0.0.1:7001 -featuregate-addr 127.0.0.1:7003
wait_ok gateway "http://$GATEWAY_ADDR/readyz"

cat <<MSG

ghconnect is running.
  REST gateway:   http://$GATEWAY_ADDR  (OpenAPI: http://$GATEWAY_ADDR/openapi.json)
  admin token:    $token   (also in $DATA/admin-token)
  registry gRPC:  127.0.0.1:7001 (reflection on; metrics at http://127.0.0.1:7101/metrics)
  featuregate:    127.0.0.1:7003 (metrics at http://127.0.0.1:7103/metrics)
  dev license:    $DATA/dev.ghl
  logs:           $LOGS/

Try:
  curl -H "Authorization: Bearer \$(cat $DATA/admin-token)" http://$GATEWAY_ADDR/v1/connections

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
echo "a service exited; see $LOGS/" >&2
