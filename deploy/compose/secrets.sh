#!/usr/bin/env bash
# Makes the secret files docker-compose.yml mounts, for the demo (and as a
# start for a real deployment), in $GHCONNECT_SECRETS (default
# deploy/secrets, gitignored). What exists is kept: running it again
# changes nothing.
#
#   <principal>-token   a bearer token, one per principal (admin,
#                       registry, broker, featuregate, gateway, demo-client)
#   tokens              "<principal> sha256:<hex>" lines: what the services accept
#   vault-token         the demo Vault's root token (vault-setup only)
#   license-issuer.key, license-issuers, dev.ghl
#                       a development license issuer and a license it signed
#   broker-policy.json  the broker's callers
#   authz.json          who may call which method (-authz-file)
#   pg-password, pg-passfile
#                       the database role's password, for PostgreSQL and
#                       (as a libpq password file) for the services
#   tls/                a development CA and a certificate per service and
#                       for demo-client (`ghconnectctl tls-init`), valid for
#                       127.0.0.1, localhost and $GHCONNECT_PUBLIC_IP
#   vault-creds/        written by `ghconnectctl vault-setup` (deploy/compose/demo.sh)
#
# The folder is 0700; the files in it are world-readable so that the
# containers' users (65532, postgres) can read the ones mounted into them.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
S=${GHCONNECT_SECRETS:-deploy/secrets}
mkdir -p "$S"
chmod 700 "$S"

go build -o bin/ ./services/registry/cmd/mintlicense ./services/gateway/cmd/ghconnectctl

random() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40; }
put() { # file, content (only when the file is absent or empty)
  [ -s "$S/$1" ] && return 0
  printf '%s' "$2" > "$S/$1.tmp" && mv "$S/$1.tmp" "$S/$1"
}

tokens=""
# The services call each other with their certificates; the bearer tokens
# are the admin's (the gateway passes it on) and demo-client's.
for p in admin demo-client; do
  put "$p-token" "$(random)"
  tokens+="$p sha256:$(sha256sum < "$S/$p-token" | cut -d' ' -f1)"$'\n'
done
printf '%s' "$tokens" > "$S/tokens"
put vault-token "$(random)"

pw=$(random)
put pg-password "$pw"
put pg-passfile "*:*:*:ghconnect:$(cat "$S/pg-password")"

# The broker's callers: the feature gate searches with read-only tokens,
# demo-client stands for an internal service asking for tokens itself, the
# admin may revoke a connection's tokens, the registry revokes on
# disconnect.
put broker-policy.json '{"callers": {
  "featuregate": {"connections": ["*"], "permissions": {"contents": "read", "issues": "read", "metadata": "read"}, "repositories": ["*"], "user_tokens": true},
  "demo-client": {"connections": ["*"], "permissions": {"contents": "read", "metadata": "read"}, "repositories": ["*"]},
  "admin": {"connections": ["*"], "permissions": {"metadata": "read"}, "repositories": ["*"], "exclusive": true, "admin": true},
  "registry": {"connections": ["*"], "permissions": {"metadata": "read"}, "repositories": ["*"], "admin": true}
}}
'

# Who may call what (pkg/auth/roles.json): the default members, and
# demo-client as an internal service that also uses the feature gate.
put authz.json '{"principals": {"*": ["token-client"], "admin": ["admin"], "registry": ["registry"], "broker": ["broker"],
  "featuregate": ["featuregate"], "gateway": ["gateway"], "demo-client": ["feature-client"]},
 "forwarders": {"gateway": ["admin", "auditor", "account-holder"]}}
'

if [ ! -s "$S/dev.ghl" ]; then
  bin/mintlicense -issuer-key "$S/license-issuer.key" -issuers-out "$S/license-issuers" \
    -customer "Octo Corp" -seats 500 > "$S/dev.ghl.tmp"
  mv "$S/dev.ghl.tmp" "$S/dev.ghl"
fi

hosts=127.0.0.1,localhost
[ -n "${GHCONNECT_PUBLIC_IP:-}" ] && [ "$GHCONNECT_PUBLIC_IP" != 127.0.0.1 ] && hosts+=",$GHCONNECT_PUBLIC_IP"
bin/ghconnectctl tls-init -out "$S/tls" -names registry,broker,featuregate,gateway,demo-client -hosts "$hosts" > /dev/null

mkdir -p "$S/vault-creds"
chmod 700 "$S/vault-creds"
find "$S" -type f ! -name '*.key' ! -name ca-key.pem -exec chmod 644 {} +
chmod 600 "$S"/*.key "$S/admin-token" "$S/tls/ca-key.pem"
echo "secrets: $S is ready"
