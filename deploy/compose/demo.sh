#!/usr/bin/env bash
# The demo stack of docker-compose.yml (profile "demo": vaultdev and the
# GitHub.com emulator), in the order it needs:
#
#   deploy/compose/demo.sh up     secrets (deploy/compose/secrets.sh), PostgreSQL,
#                                 Vault and the emulator, the Vault setup step
#                                 (AppRoles into $GHCONNECT_SECRETS/vault-creds,
#                                 with the demo Vault's root token), then the
#                                 services; waits until every one is healthy
#   deploy/compose/demo.sh down   stops and removes the containers and volumes
#   deploy/compose/demo.sh ps|logs [args]
#
# Images first: make images. Settings: docker-compose.yml's variables
# (ports, GHCONNECT_SECRETS, GHCONNECT_TAG), COMPOSE_PROJECT_NAME (default
# ghconnect) and GHCONNECT_WAIT (seconds to wait for health, default 180).
# The demo always uses its own Vault and emulator: VAULT_ADDR, GITHUB_URL
# and GITHUB_WEB_URL are set to them.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-ghconnect}
S=${GHCONNECT_SECRETS:-deploy/secrets}
mkdir -p "$S"
export GHCONNECT_SECRETS=$(cd "$S" && pwd)
: "${GHCONNECT_TAG:=dev}" "${GHCONNECT_PORT_VAULTDEV:=8200}" "${GHCONNECT_PORT_GHEMU:=8300}" "${GHCONNECT_PORT_GATEWAY:=8080}"
: "${GHCONNECT_PUBLIC_IP:=127.0.0.1}"
export GHCONNECT_TAG GHCONNECT_PORT_VAULTDEV GHCONNECT_PORT_GHEMU GHCONNECT_PORT_GATEWAY GHCONNECT_PUBLIC_IP
export VAULT_ADDR=http://127.0.0.1:$GHCONNECT_PORT_VAULTDEV
export GITHUB_URL=http://127.0.0.1:$GHCONNECT_PORT_GHEMU GITHUB_WEB_URL=http://127.0.0.1:$GHCONNECT_PORT_GHEMU
WAIT=${GHCONNECT_WAIT:-180}

compose() { docker-compose --ansi never -f docker-compose.yml --profile demo "$@"; }
die() { echo "demo: $*" >&2; exit 1; }

# logs of the services named, without the demo Vault's unseal key (vaultdev
# prints it on stdout).
logs() { compose logs --no-color --tail "${TAIL:-40}" "$@" 2>&1 | grep -v 'VAULT_UNSEAL_KEY=' || true; }

# wait_healthy service…: until each container's health check passes.
wait_healthy() {
  local deadline=$((SECONDS + WAIT)) svc cid st
  for svc in "$@"; do
    while :; do
      cid=$(compose ps -q "$svc" 2>/dev/null || true)
      st=$( [ -n "$cid" ] && docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$cid" 2>/dev/null || echo missing)
      [ "$st" = healthy ] && break
      if [ "$st" = unhealthy ] || [ $SECONDS -ge $deadline ]; then
        echo "demo: $svc is $st after ${WAIT}s at most; its last log lines:" >&2
        logs "$svc" >&2
        exit 1
      fi
      sleep 0.5
    done
    echo "demo: $svc is healthy"
  done
}

up() {
  for img in postgres registry broker featuregate gateway vaultdev ghemu; do
    docker image inspect "ghconnect/$img:$GHCONNECT_TAG" >/dev/null 2>&1 || die "image ghconnect/$img:$GHCONNECT_TAG is missing: run make images"
  done
  deploy/compose/secrets.sh
  go build -o bin/ ./services/gateway/cmd/ghconnectctl
  # vault-creds/ must hold files before compose mounts them (placeholders
  # until vault-setup writes them).
  for f in registry-role-id registry-secret-id broker-role-id broker-secret-id; do
    [ -e "$GHCONNECT_SECRETS/vault-creds/$f" ] || : > "$GHCONNECT_SECRETS/vault-creds/$f"
  done
  compose up -d postgres vaultdev ghemu
  wait_healthy vaultdev ghemu postgres
  # The Vault side, with the root token (changes nothing that is right).
  if ! out=$(bin/ghconnectctl vault-setup -vault-addr "$VAULT_ADDR" -vault-token-file "$GHCONNECT_SECRETS/vault-token" \
    -policies deploy/vault -out "$GHCONNECT_SECRETS/vault-creds" 2>&1); then
    printf '%s\n' "$out" >&2
    die "vault-setup against $VAULT_ADDR failed"
  fi
  chmod 644 "$GHCONNECT_SECRETS"/vault-creds/*
  compose up -d
  wait_healthy registry broker featuregate gateway
  cat <<MSG
demo: ghconnect is running (project $COMPOSE_PROJECT_NAME).
  Admin page:  https://$GHCONNECT_PUBLIC_IP:$GHCONNECT_PORT_GATEWAY/  (admin token: $GHCONNECT_SECRETS/admin-token;
               the development CA to trust: $GHCONNECT_SECRETS/tls/ca.pem)
  License:     $GHCONNECT_SECRETS/dev.ghl  (paste it into the Enable form; GitHub.com account: octo-org)
  Vault:       $VAULT_ADDR  (root token: $GHCONNECT_SECRETS/vault-token)
  GitHub emu:  $GITHUB_URL
  Metrics:     http://127.0.0.1:7101/metrics … :7103, and the gateway's :8180 (default ports); a Prometheus with
               the alert rules: cd deploy/monitoring && prometheus --config.file=prometheus.yml
MSG
}

case ${1:-} in
  up) up ;;
  down) compose down -v --remove-orphans ;;
  ps) shift; compose ps "$@" ;;
  logs) shift; logs "$@" ;;
  *) echo "usage: $0 up|down|ps|logs [service…]" >&2; exit 2 ;;
esac
