#!/usr/bin/env bash
# Fetches GitHub's official OpenAPI description (npm package
# @octokit/openapi, pinned by version and sha256) and extracts the two files
# the emulator validates against into openapi/.spec/. The package is packed,
# not installed: installed it unpacks to about 490 MB.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=23.0.2
SHA256=71a18407dd5e8464f4e0525daf03deabbe65abd9287d6adc7b5d98f516cd0d0c
OUT=.spec
if [ -s "$OUT/api.github.com.json" ] && [ -s "$OUT/ghec.json" ] && [ "$(cat "$OUT/VERSION" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@octokit/openapi@$VERSION" >/dev/null)
tgz="$tmp/octokit-openapi-$VERSION.tgz"
got=$(sha256sum "$tgz" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  echo "fetch.sh: @octokit/openapi@$VERSION has sha256 $got, want $SHA256" >&2
  exit 1
fi
mkdir -p "$OUT"
tar -xzf "$tgz" -C "$tmp" package/generated/api.github.com.json package/generated/ghec.json
mv "$tmp/package/generated/api.github.com.json" "$tmp/package/generated/ghec.json" "$OUT/"
echo "$VERSION" > "$OUT/VERSION"
