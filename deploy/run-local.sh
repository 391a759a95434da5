#!/usr/bin/env bash
# Builds and starts ghconnect on this machine with the embedded defaults:
# each service on a loopback port, data under .data/ (kept across runs).
# Prints the gateway URL and the admin token; Ctrl-C stops everything.
# Mutual TLS on every gRPC hop and HTTPS at the gateway, from a local CA
# made on first start ($DATA/tls); GHCONNECT_PLAINTEXT=1 runs plaintext
# gRPC and plain HTTP on loopback instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

DATA=${GHCONNECT_DATA:-.data}
LOGS=$DATA/logs
GATEWAY_ADDR=${GHCONNECT_GATEWAY_ADDR:-127.0.0.1:8080}
mkdir -p "$DATA" "$LOGS" bin
chmod 700 "$DATA"

echo "building…"
go build -o bin/ ./services/registry/cmd/registry ./services/registry/cmd/mintlicense ./services/gateway/cmd/gateway ./services/gateway/cmd/ghconnectctl \
  ./services/featuregate/cmd/featuregate ./services/broker/cmd/broker ./dev/ghemu/cmd/ghemu ./dev/oidcdev/cmd/oidcdev
(cd dev/vaultdev && GOWORK=off go build -o ../../bin/ ./cmd/vaultdev)

# Bearer tokens live only in $DATA/<principal>-token (mode 600); the
# services get their SHA-256 in $DATA/tokens.
: > "$DATA/tokens"
for principal in admin featuregate broker registry gateway vault demo-client runner; do
  if [ ! -s "$DATA/$principal-token" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 > "$DATA/$principal-token")
  fi
  printf '%s sha256:%s\n' "$principal" "$(tr -d '\n' < "$DATA/$principal-token" | sha256sum | cut -d' ' -f1)" >> "$DATA/tokens"
done
token=$(cat "$DATA/admin-token")

# TLS: a CA and a certificate per service (and one for you, "admin", for
# grpcurl), kept in $DATA/tls while still good. Each service serves with
# its certificate, requires callers' certificates signed by the CA, and
# presents its certificate on the calls it makes: the certificate's name
# is its principal, so no service token is sent.
TLS=$DATA/tls
if [ "${GHCONNECT_PLAINTEXT:-}" = 1 ]; then
  SCHEME=http; CURL_CA=()
  serve_tls() { :; }
  dial_tls() { echo "${@:2}"; }
else
  SCHEME=https; CURL_CA=(--cacert "$TLS/ca.pem")
  bin/ghconnectctl tls-init -out "$TLS" -names registry,broker,featuregate,gateway,admin,demo-client > /dev/null
  serve_tls() { echo -tls-cert "$TLS/$1.pem" -tls-key "$TLS/$1-key.pem" -client-ca "$TLS/ca.pem" -require-client-cert; }
  # dial_tls NAME TOKEN-FLAGS…: the client certificate replaces the token flags.
  dial_tls() { echo -dial-ca "$TLS/ca.pem" -dial-cert "$TLS/$1.pem" -dial-key "$TLS/$1-key.pem"; }
fi

# Who may call what: the defaults, and demo-client, standing for a server
# service that uses the Connect features for its users (unified search,
# consents, account links) over gRPC with its own certificate or token,
# and for the server's sources of contribution counts, licensed users
# and aggregate counts; runner stands for
# the server's Actions runners, which fetch GitHub.com actions.
cat > "$DATA/authz.json" <<'JSON'
{"principals": {"*": ["token-client"], "admin": ["admin"], "registry": ["registry"], "broker": ["broker"], "featuregate": ["featuregate"],
                "gateway": ["gateway"], "demo-client": ["feature-client", "contributions-source", "license-source", "stats-source"],
                "runner": ["actions-runner"]},
 "forwarders": {"gateway": ["admin", "auditor", "account-holder"]}}
JSON

# The broker's callers: the feature gate searches with read-only tokens
# and runs users' GitHub.com links (user tokens); the admin may revoke a
# connection's tokens.
cat > "$DATA/broker-policy.json" <<'JSON'
{"callers": {
  "featuregate": {"connections": ["*"], "permissions": {"contents": "read", "issues": "read", "metadata": "read"}, "repositories": ["*"], "user_tokens": true},
  "admin": {"connections": ["*"], "permissions": {"metadata": "read"}, "repositories": ["*"], "exclusive": true, "admin": true},
  "registry": {"connections": ["*"], "permissions": {"metadata": "read"}, "repositories": ["*"], "admin": true}
}}
JSON

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
    if curl -fsS "${CURL_CA[@]}" -o /dev/null "$2" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not become healthy; see $LOGS/$1.log" >&2
  tail -n 20 "$LOGS/$1.log" >&2 || true
  exit 1
}

read_addr() { # name, variable prefix: the first stdout line of a dev tool
  for _ in $(seq 1 100); do
    if grep -q "^$2=" "$LOGS/$1.out" 2>/dev/null; then sed -n "s/^$2=//p" "$LOGS/$1.out" | head -n1; return 0; fi
    sleep 0.1
  done
  echo "$1 did not start; see $LOGS/$1.log" >&2; exit 1
}

bin/vaultdev -addr 127.0.0.1:8200 -root-token-file "$DATA/vault-token" -data-dir "$DATA/vault" -audit-file "$LOGS/vault-audit.log" \
  >"$LOGS/vaultdev.out" 2>"$LOGS/vaultdev.log" &
pids+=($!)
VAULT_ADDR=$(read_addr vaultdev VAULT_ADDR)
# The Vault side, once (again on every start: it changes nothing that is
# right): policies from deploy/vault, one AppRole per service. The root
# token is used for this only; the services log in with their AppRoles.
bin/ghconnectctl vault-setup -vault-addr "$VAULT_ADDR" -vault-token-file "$DATA/vault-token" \
  -policies deploy/vault -out "$DATA/vault-creds" > "$LOGS/vault-setup.log"
approle() { echo -vault-role-id-file "$DATA/vault-creds/$1-role-id" -vault-secret-id-file "$DATA/vault-creds/$1-secret-id"; }
bin/ghemu -addr 127.0.0.1:8300 -seed dev/ghemu/seed.example.json -contract -state-file "$DATA/github-emulator.json" >"$LOGS/ghemu.out" 2>"$LOGS/ghemu.log" &
pids+=($!)
GITHUB_API_URL=$(read_addr ghemu GITHUB_API_URL)
# The development identity provider admins sign in with: its sign-in page
# takes whoever you type (members of ghconnect-admins are admins, of
# ghconnect-auditors auditors). A real deployment points the gateway's
# -oidc-* flags at the enterprise's provider instead.
if [ ! -s "$DATA/oidc-client-secret" ]; then
  (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 > "$DATA/oidc-client-secret")
fi
bin/oidcdev -addr 127.0.0.1:8400 -client-id ghconnect-gateway -client-secret-file "$DATA/oidc-client-secret" \
  >"$LOGS/oidcdev.out" 2>"$LOGS/oidcdev.log" &
pids+=($!)
OIDC_ISSUER=$(read_addr oidcdev OIDC_ISSUER)

start registry bin/registry -grpc-addr 127.0.0.1:7001 -http-addr 127.0.0.1:7101 \
  -database "sqlite:$DATA/registry.db" -tokens-file "$DATA/tokens" -license-issuers "$DATA/license-issuers.txt" \
  -server-hostname "${GHCONNECT_SERVER_HOSTNAME:-ghes.local}" -server-version "${GHCONNECT_SERVER_VERSION:-3.14.2}" -license-file "$DATA/dev.ghl" \
  -vault-addr "$VAULT_ADDR" $(approle registry) -github-url "$GITHUB_API_URL" -github-web-url "$GITHUB_API_URL" \
  -broker-addr 127.0.0.1:7002 -featuregate-addr 127.0.0.1:7003 $(serve_tls registry) \
  $(dial_tls registry -service-token-file "$DATA/registry-token")
wait_ok registry http://127.0.0.1:7101/readyz
start broker bin/broker -grpc-addr 127.0.0.1:7002 -http-addr 127.0.0.1:7102 -tokens-file "$DATA/tokens" \
  -policy "$DATA/broker-policy.json" -vault-addr "$VAULT_ADDR" $(approle broker) \
  -github-url "$GITHUB_API_URL" -github-web-url "$GITHUB_API_URL" -database "sqlite:$DATA/broker.db" \
  -registry-addr 127.0.0.1:7001 -loadtest-echo $(serve_tls broker) \
  $(dial_tls broker -registry-token-file "$DATA/broker-token")
wait_ok broker http://127.0.0.1:7102/readyz
start featuregate bin/featuregate -grpc-addr 127.0.0.1:7003 -http-addr 127.0.0.1:7103 \
  -database "sqlite:$DATA/featuregate.db" -tokens-file "$DATA/tokens" -authz-file "$DATA/authz.json" $(serve_tls featuregate) \
  -registry-addr 127.0.0.1:7001 -broker-addr 127.0.0.1:7002 -github-url "$GITHUB_API_URL" \
  $(dial_tls featuregate -registry-token-file "$DATA/featuregate-token" -broker-token-file "$DATA/featuregate-token")
wait_ok featuregate http://127.0.0.1:7103/readyz
gateway_tls=()
[ "$SCHEME" = https ] && gateway_tls=(-tls-cert "$TLS/gateway.pem" -tls-key "$TLS/gateway-key.pem")
start gateway bin/gateway -addr "$GATEWAY_ADDR" -http-addr 127.0.0.1:8180 -registry-addr 127.0.0.1:7001 -broker-addr 127.0.0.1:7002 -featuregate-addr 127.0.0.1:7003 \
  -github-web-url "$GITHUB_API_URL" "${gateway_tls[@]}" $(dial_tls gateway -service-token-file "$DATA/gateway-token") \
  -oidc-issuer "$OIDC_ISSUER" -oidc-client-id ghconnect-gateway -oidc-client-secret-file "$DATA/oidc-client-secret" -public-url "$SCHEME://$GATEWAY_ADDR" \
  -database "sqlite:$DATA/gateway.db"
wait_ok gateway "$SCHEME://$GATEWAY_ADDR/readyz"

cat <<MSG

ghconnect is running.
  Admin page:     $SCHEME://$GATEWAY_ADDR/   (single sign-on through the development identity provider at $OIDC_ISSUER:
                  type any email; groups ghconnect-admins = admin, ghconnect-auditors = auditor)
  admin token:    $token   (also in $DATA/admin-token; for automation: REST and gRPC with Authorization: Bearer)
  dev license:    $DATA/dev.ghl   (the registry's -license-file: the Enable form only asks for the GitHub.com account, e.g. octo-org)
  REST gateway:   $SCHEME://$GATEWAY_ADDR/v1/…  (OpenAPI: $SCHEME://$GATEWAY_ADDR/openapi.json)
  TLS:            local CA $TLS/ca.pem (trust it in your browser, or pass it to curl with --cacert;
                  GHCONNECT_PLAINTEXT=1 make run serves plain HTTP and plaintext gRPC instead)
  registry gRPC:  127.0.0.1:7001 (reflection on; metrics at http://127.0.0.1:7101/metrics; grpcurl -cacert $TLS/ca.pem
                  -cert $TLS/admin.pem -key $TLS/admin-key.pem 127.0.0.1:7001 list)
  broker gRPC:    127.0.0.1:7002 (metrics at http://127.0.0.1:7102/metrics)
  featuregate:    127.0.0.1:7003 (metrics at http://127.0.0.1:7103/metrics)
  gateway metrics: http://127.0.0.1:8180/metrics
  Prometheus:     cd deploy/monitoring && prometheus --config.file=prometheus.yml   (scrapes all four, loads the
                  alert rules; dashboards in deploy/monitoring/dashboards; README, "Operating ghconnect")
  vaultdev:       $VAULT_ADDR (root token in $DATA/vault-token, for you only; keys kept in $DATA/vault;
                  AppRole credentials in $DATA/vault-creds; audit log $LOGS/vault-audit.log)
  GitHub emulator: $GITHUB_API_URL (seeded from dev/ghemu/seed.example.json)
  logs:           $LOGS/

Try:
  curl ${CURL_CA[*]} -H "Authorization: Bearer \$(cat $DATA/admin-token)" $SCHEME://$GATEWAY_ADDR/v1/connections
  your own page, as a server user: sign in as mona@example.com with no groups ($SCHEME://$GATEWAY_ADDR/me)
  unified search as a server service (demo-client, a feature client): README, "Connecting your GitHub.com account"
  contribution counts as the server's source (demo-client): README, "Unified contributions: what leaves the server"
  a GitHub.com action as a runner (turn "GitHub.com actions" on first):
    curl ${CURL_CA[*]} -o checkout.tar.gz -H "Authorization: Bearer \$(cat $DATA/runner-token)" $SCHEME://$GATEWAY_ADDR/v1/actions/actions/checkout/tarball/main

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
echo "a service exited; see $LOGS/" >&2
