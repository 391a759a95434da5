#!/usr/bin/env bash
# make compose-test: the containers, for real. Installs docker.io,
# docker-compose and debootstrap with apt when missing, starts dockerd when
# it is not running (and stops it again, by its PID, at the end), builds the
# images (make images: the Debian base only when missing), brings up the
# whole of docker-compose.yml with the demo profile under a project name of
# its own, on test ports and with secrets in a temporary folder, waits for
# every health check, runs the smoke test (e2e TestCompose: the App-manifest
# flow through the gateway against the emulator, a broker token over gRPC,
# unified search, disconnect), checks the containers' hardening and that no
# secret reached their logs, then removes everything it created, also on
# failure.
#
# Ports (all on 127.0.0.1): GHCONNECT_PORT_* as in docker-compose.yml,
# defaults 17001-17003 (gRPC), 17101-17103 (HTTP), 18080 (gateway), 18180
# (the gateway's metrics), 18200 (Vault), 18300 (emulator), 55432
# (PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
T0=$SECONDS
timings=()
phase() { timings+=("$(printf '%-28s %4ds' "$1" $((SECONDS - PHASE_START)))"); PHASE_START=$SECONDS; }
PHASE_START=$SECONDS
die() { echo "compose-test: $*" >&2; exit 1; }

# 1. Tools, from Debian.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
  echo "compose-test: installing ${missing[*]}…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
phase "tools"

# Test ports, free ones or a clear refusal before anything is built.
: "${GHCONNECT_PORT_GATEWAY:=18080}" "${GHCONNECT_PORT_REGISTRY:=17001}" "${GHCONNECT_PORT_REGISTRY_HTTP:=17101}"
: "${GHCONNECT_PORT_BROKER:=17002}" "${GHCONNECT_PORT_BROKER_HTTP:=17102}" "${GHCONNECT_PORT_FEATUREGATE:=17003}"
: "${GHCONNECT_PORT_FEATUREGATE_HTTP:=17103}" "${GHCONNECT_PORT_VAULTDEV:=18200}" "${GHCONNECT_PORT_GHEMU:=18300}"
: "${GHCONNECT_PORT_POSTGRES:=55432}" "${GHCONNECT_PORT_GATEWAY_HTTP:=18180}"
export GHCONNECT_PORT_GATEWAY_HTTP GHCONNECT_PORT_GATEWAY GHCONNECT_PORT_REGISTRY GHCONNECT_PORT_REGISTRY_HTTP GHCONNECT_PORT_BROKER GHCONNECT_PORT_BROKER_HTTP \
  GHCONNECT_PORT_FEATUREGATE GHCONNECT_PORT_FEATUREGATE_HTTP GHCONNECT_PORT_VAULTDEV GHCONNECT_PORT_GHEMU GHCONNECT_PORT_POSTGRES
export GHCONNECT_PUBLIC_IP=127.0.0.1
for v in ${!GHCONNECT_PORT_@}; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${!v}") 2>/dev/null; then
    die "port ${!v} ($v) is already in use on 127.0.0.1 (by a killed earlier run? docker ps -a); set $v to a free port"
  fi
done

# 2. dockerd, ours only when none is running. No default bridge and no
# iptables rules: every container here uses the host's network.
work=$(mktemp -d /tmp/ghconnect-compose-test.XXXXXX)
DOCKERD_PID=
PROJECT=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$PROJECT" ]; then
    if [ $rc -ne 0 ]; then
      echo "compose-test: failed; the containers' last log lines:" >&2
      TAIL=30 deploy/compose/demo.sh logs >&2
    fi
    PHASE_START=$SECONDS
    deploy/compose/demo.sh down >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; echo "compose-test: docker-compose down failed" >&2; }
    phase "stack down (-v)"
  fi
  if [ -n "$DOCKERD_PID" ]; then
    PHASE_START=$SECONDS
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && echo "compose-test: dockerd ($DOCKERD_PID) did not stop" >&2
    phase "dockerd stopped"
  fi
  rm -rf "$work"
  if [ ${#timings[@]} -gt 0 ]; then
    echo "compose-test timings:"
    printf '  %s\n' "${timings[@]}"
  fi
  printf '  %-28s %4ds\n' total $((SECONDS - T0))
  [ $rc -eq 0 ] && echo "compose-test: ok" || echo "compose-test: FAILED" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "dockerd is not running, and starting it needs root"
  # A pid file left by a dockerd that is gone would stop the new one.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then rm -f /var/run/docker.pid; fi
  echo "compose-test: starting dockerd (log: $work/dockerd.log)"
  dockerd --bridge=none --iptables=false >"$work/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 150); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -n 20 "$work/dockerd.log" >&2; DOCKERD_PID=; die "dockerd exited"; }
    sleep 0.2
  done
  docker info >/dev/null 2>&1 || { tail -n 20 "$work/dockerd.log" >&2; die "dockerd did not answer within 30s"; }
fi
phase "dockerd"

# 3. Images.
deploy/images.sh
phase "images"

# 4. The stack, on the test ports.
export GHCONNECT_SECRETS=$work/secrets
export COMPOSE_PROJECT_NAME=ghconnect-test-$$-$RANDOM
PROJECT=$COMPOSE_PROJECT_NAME
deploy/compose/demo.sh up
phase "stack up (healthy)"

# 5. Hardening as deployed.
for c in $(docker ps -q --filter "label=com.docker.compose.project=$PROJECT"); do
  read -r name ro user caps nnp net < <(docker inspect -f '{{.Name}} {{.HostConfig.ReadonlyRootfs}} {{.Config.User}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{.HostConfig.NetworkMode}}' "$c")
  [ "$ro" = true ] && [ "$caps" = "[ALL]" ] && [ "$nnp" = "[no-new-privileges:true]" ] && [ "$net" = host ] \
    || die "$name: read-only=$ro cap_drop=$caps security_opt=$nnp network=$net"
  case $name in */*_postgres_*) [ "$user" = postgres ] ;; *) [ "$user" = 65532:65532 ] ;; esac || die "$name runs as '$user'"
done
[ -z "$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || die "compose made a network"
phase "hardening checks"

# 6. The smoke test.
GHCONNECT_COMPOSE_GATEWAY=https://127.0.0.1:$GHCONNECT_PORT_GATEWAY \
GHCONNECT_COMPOSE_BROKER=127.0.0.1:$GHCONNECT_PORT_BROKER \
GHCONNECT_COMPOSE_GITHUB=http://127.0.0.1:$GHCONNECT_PORT_GHEMU \
GHCONNECT_COMPOSE_VAULT=http://127.0.0.1:$GHCONNECT_PORT_VAULTDEV \
GHCONNECT_COMPOSE_SECRETS=$GHCONNECT_SECRETS \
GHCONNECT_COMPOSE_ISSUED=$work/issued \
  go test -count=1 -run '^TestCompose$' -v ./e2e
phase "smoke test"

# 7. No secret in any container's log.
docker-compose -f docker-compose.yml --profile demo logs --no-color >"$work/logs" 2>&1
[ -s "$work/logs" ] || die "no container logs"
for f in "$GHCONNECT_SECRETS"/*-token "$GHCONNECT_SECRETS"/pg-password "$GHCONNECT_SECRETS"/vault-creds/*-secret-id "$work/issued"; do
  sec=$(tr -d '\n' <"$f")
  [ ${#sec} -ge 16 ] || die "$(basename "$f") is too short to check"
  if grep -qF -- "$sec" "$work/logs"; then die "the secret in $(basename "$f") reached a container's log"; fi
done
! grep -q 'PRIVATE KEY' "$work/logs" || die "a private key reached a container's log"
for f in "$GHCONNECT_SECRETS"/tls/*-key.pem; do
  body=$(sed -n 2p "$f")
  if grep -qF -- "$body" "$work/logs"; then die "$(basename "$f") reached a container's log"; fi
done
phase "log checks"
