#!/usr/bin/env bash
# Builds ghconnect's container images on this machine, offline: static Go
# binaries built on the host (CGO_ENABLED=0, -trimpath) copied into FROM
# scratch images (deploy/Dockerfile), and PostgreSQL on a Debian base made
# with debootstrap (deploy/postgres). Nothing is pulled from a registry.
#
#   deploy/images.sh            # every image, tagged ghconnect/<name>:$GHCONNECT_TAG (default dev)
#
# Needs a running dockerd; the Debian base (built once, then reused) needs
# debootstrap and root.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
TAG=${GHCONNECT_TAG:-dev}
BASE=ghconnect/debian-base:bookworm
OUT=bin/images
# The legacy builder: BuildKit is not needed and may not be installed.
export DOCKER_BUILDKIT=0

die() { echo "images: $*" >&2; exit 1; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

docker info >/dev/null 2>&1 || die "cannot reach dockerd (start it: 'dockerd &' as root; make compose-test does that for you)"

# The Debian base, once: debootstrap from the mirror apt already uses.
build_base() {
  docker image inspect "$BASE" >/dev/null 2>&1 && return 0
  command -v debootstrap >/dev/null || die "$BASE is missing and debootstrap is not installed (apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || die "$BASE is missing; building it with debootstrap needs root"
  local mirror sources=/etc/apt/sources.list.d/debian.sources
  if [ -f "$sources" ]; then
    mirror=$(awk '$1 == "URIs:" { print $2; exit }' "$sources")
  else
    mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  fi
  [ -n "$mirror" ] || die "no Debian mirror found in $sources or /etc/apt/sources.list"
  local t0 root
  t0=$(date +%s)
  root=$(mktemp -d /tmp/ghconnect-debian-base.XXXXXX)
  echo "images: debootstrap bookworm (minbase) from the host's apt mirror into $root…"
  if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1; then
    tail -n 20 "$root.log" >&2
    rm -rf "$root" "$root.log"
    die "debootstrap failed (log above)"
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root" "$root.log"
  echo "images: $BASE built in $(elapsed "$t0")"
}

# build TAG ARGS…: docker build, quiet unless it fails (--network host: no
# bridge network); the image the tag named before is removed when unused.
build() {
  local tag=$1 out old new
  shift
  old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  out=$(docker build --network host -t "$tag" "$@" 2>&1) || { printf '%s\n' "$out" >&2; die "docker build of $tag failed (output above)"; }
  new=$(docker image inspect -f '{{.Id}}' "$tag")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then docker image rm "$old" >/dev/null 2>&1 || true; fi
}

t0=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT/bin"
static=(env CGO_ENABLED=0 go build -trimpath -ldflags=-s)
"${static[@]}" -o "$OUT/bin/" ./services/registry/cmd/registry ./services/broker/cmd/broker \
  ./services/featuregate/cmd/featuregate ./services/gateway/cmd/gateway ./dev/ghemu/cmd/ghemu ./deploy/healthcheck
(cd dev/vaultdev && GOWORK=off "${static[@]}" -o "../../$OUT/bin/" ./cmd/vaultdev)
echo "images: static binaries built in $(elapsed "$t0")"

[ -s /etc/ssl/certs/ca-certificates.crt ] || die "/etc/ssl/certs/ca-certificates.crt is missing (apt-get install ca-certificates)"
for name in registry broker featuregate gateway vaultdev ghemu; do
  ctx=$OUT/$name
  mkdir -p "$ctx/data" "$ctx/rootfs/etc/ssl/certs"
  touch "$ctx/data/.keep"
  ln "$OUT/bin/$name" "$ctx/$name"
  ln "$OUT/bin/healthcheck" "$ctx/rootfs/healthcheck"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
  [ "$name" != ghemu ] || cp dev/ghemu/seed.example.json "$ctx/rootfs/seed.json"
  build "ghconnect/$name:$TAG" -f deploy/Dockerfile --build-arg BINARY="$name" "$ctx"
done
echo "images: service images built in $(elapsed "$t0")"

t1=$(date +%s)
build_base
build "ghconnect/postgres:$TAG" --build-arg BASE="$BASE" deploy/postgres
echo "images: ghconnect/postgres built in $(elapsed "$t1")"

docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep "^ghconnect/.*:$TAG " | sed 's/^/  /' || true
