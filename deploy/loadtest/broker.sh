#!/usr/bin/env bash
# Load test of a deployed token broker: ghz drives IssueToken, then
# grpc.health.v1.Health/Check on the same server as the baseline, and the
# script prints both and their ratio. Run it as `make loadtest TARGET=host:port`.
#
#   TARGET        host:port of the broker (required)
#   CONNECTION    connection id to ask tokens for (required)
#   REPOSITORY    repository to ask for (default: none, all the policy allows)
#   PERMISSIONS   JSON permissions map (default: {"metadata":"read"})
#   REQUESTS      requests per run (default 20000), CONCURRENCY (default 64)
#   CA, CERT, KEY PEM files for mutual TLS (without CA: plaintext)
#   TOKEN_FILE    file holding the caller's bearer token (optional with CERT)
#   GHZ           the ghz binary (default bin/ghz)
set -euo pipefail
: "${TARGET:?TARGET=host:port is required}"
: "${CONNECTION:?CONNECTION=<connection id> is required}"
GHZ=${GHZ:-bin/ghz}
REQUESTS=${REQUESTS:-20000}
CONCURRENCY=${CONCURRENCY:-64}
PERMISSIONS=${PERMISSIONS:-'{"metadata":"read"}'}

args=(--format json)
if [[ -n ${CA:-} ]]; then
  args+=(--cacert "$CA")
  [[ -z ${CERT:-} ]] || args+=(--cert "$CERT" --key "${KEY:?KEY is required with CERT}")
else
  args+=(--insecure)
fi
work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT
if [[ -n ${TOKEN_FILE:-} ]]; then
  # The token goes to ghz in a file of its own (mode 600), never on a
  # command line other processes can read.
  (umask 077 && jq -n --rawfile t "$TOKEN_FILE" '{authorization: ("Bearer " + ($t | rtrimstr("\n")))}' > "$work/md.json")
  args+=(--metadata-file "$work/md.json")
  # ghz takes reflection metadata only inline; without it, reflection runs
  # on the client certificate alone.
  [[ -n ${CERT:-} ]] || args+=(--reflect-metadata "$(cat "$work/md.json")")
fi

req=$(jq -cn --arg c "$CONNECTION" --arg r "${REPOSITORY:-}" --argjson p "$PERMISSIONS" \
  '{connection_id: $c, permissions: $p} + (if $r == "" then {} else {repositories: [$r]} end)')

run() { # method, data, report file (ghz's JSON, per-call details dropped)
  "$GHZ" "${args[@]}" --total "$REQUESTS" --concurrency "$CONCURRENCY" --connections 4 --skipFirst 100 \
    --call "$1" -d "$2" "$TARGET" | jq 'del(.details)' > "$3"
}
summary() { # name, report file
  jq -r --arg n "$1" '"\($n): \(.rps | floor) req/s, p50 \(.latencyDistribution[] | select(.percentage == 50) | .latency / 1e6) ms, p99 \(.latencyDistribution[] | select(.percentage == 99) | .latency / 1e6) ms, status \(.statusCodeDistribution | tostring)"' "$2"
}

# Warm the cache (one exchange), then measure.
"$GHZ" "${args[@]}" --total 1 --concurrency 1 --call ghconnect.broker.v1.TokenBrokerService/IssueToken -d "$req" "$TARGET" >/dev/null
run grpc.health.v1.Health/Check '{}' "$work/base.json"
run ghconnect.broker.v1.TokenBrokerService/IssueToken "$req" "$work/cand.json"
summary "Health/Check (baseline)" "$work/base.json"
summary "IssueToken" "$work/cand.json"
jq -rn --slurpfile b "$work/base.json" --slurpfile c "$work/cand.json" '
  def p99(r): r.latencyDistribution[] | select(.percentage == 99) | .latency;
  "ratio IssueToken/Health: throughput \((($c[0].rps / $b[0].rps) * 100 | round) / 100), p99 \(((p99($c[0]) / p99($b[0])) * 100 | round) / 100)"'
errs=$(jq -r '[.statusCodeDistribution | to_entries[] | select(.key != "OK") | .value] | add // 0' "$work/cand.json")
if [[ $errs != 0 ]]; then
  echo "IssueToken: $errs calls failed: $(jq -c .errorDistribution "$work/cand.json")" >&2
  exit 1
fi
