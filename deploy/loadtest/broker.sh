#!/usr/bin/env bash
# Load test of a deployed token broker: ghz drives IssueToken (a cache
# hit), then the baseline on the same server: ghconnect.loadtest.v1.
# EchoService/Echo (the broker started with -loadtest-echo), which passes
# the same authentication and interceptors, is sent a request of the same
# size and answers a reply of the same size, and nothing else. The script
# prints both and their ratio. Run it as
# `make loadtest TARGET=host:port CONNECTION=…`.
#
#   TARGET        host:port of the broker (required)
#   CONNECTION    connection id to ask tokens for (required)
#   REPOSITORY    repository to ask for (default: none, all the policy allows)
#   PERMISSIONS   JSON permissions map (default: {"metadata":"read"})
#   REQUESTS      requests per run (default 20000), CONCURRENCY (default 64)
#   CA, CERT, KEY PEM files for mutual TLS (without CA: plaintext)
#   TOKEN_FILE    file holding the caller's bearer token (optional with CERT)
#   REPLY_BYTES   the size of the echo's reply (default: the size of the
#                 IssueToken reply, read back with ghz's binary output)
#   REQUEST_BYTES the size of the echo's request (default: the size of the
#                 IssueToken request, counted as protobuf encodes it)
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

# Protobuf's sizes, for jq: a varint's length and a length-delimited
# field's (tag, length, bytes).
sizes='def vlen: if . < 128 then 1 elif . < 16384 then 2 elif . < 2097152 then 3 elif . < 268435456 then 4 else 5 end;
  def field(n): 1 + (n | vlen) + n;
  def str: utf8bytelength | if . == 0 then 0 else field(.) end;'
if [[ -z ${REQUEST_BYTES:-} ]]; then
  REQUEST_BYTES=$(jq "$sizes"'
    (.connection_id | str)
    + ([.repositories[]? | utf8bytelength | field(.)] | add // 0)
    + ([.permissions | to_entries[] | (.key | str) + (.value | str) | field(.)] | add // 0)' <<<"$req")
fi

run() { # method, data, report file (ghz's JSON, per-call details dropped)
  "$GHZ" "${args[@]}" --total "$REQUESTS" --concurrency "$CONCURRENCY" --connections 4 --skipFirst 100 \
    --call "$1" -d "$2" "$TARGET" | jq 'del(.details)' > "$3"
}
summary() { # name, report file
  jq -r --arg n "$1" '"\($n): \(.rps | floor) req/s, p50 \(.latencyDistribution[] | select(.percentage == 50) | .latency / 1e6) ms, p99 \(.latencyDistribution[] | select(.percentage == 99) | .latency / 1e6) ms, status \(.statusCodeDistribution | tostring)"' "$2"
}

# Warm the cache (one exchange), then measure.
"$GHZ" "${args[@]}" --total 1 --concurrency 1 --call ghconnect.broker.v1.TokenBrokerService/IssueToken -d "$req" "$TARGET" >/dev/null
if [[ -z ${REPLY_BYTES:-} ]]; then
  # The reply's size on the wire, from one more (cached) reply read with
  # grpcurl: protobuf's encoding of IssueTokenResponse's fields, the token
  # only measured, never printed.
  gargs=(-format json)
  if [[ -n ${CA:-} ]]; then
    gargs+=(-cacert "$CA")
    [[ -z ${CERT:-} ]] || gargs+=(-cert "$CERT" -key "$KEY")
  else
    gargs+=(-plaintext)
  fi
  # The header comes from the environment (readable by this user alone),
  # never from the command line.
  [[ -z ${TOKEN_FILE:-} ]] || gargs+=(-expand-headers -rpc-header 'authorization: ${GHCONNECT_LOADTEST_AUTH}')
  REPLY_BYTES=$(GHCONNECT_LOADTEST_AUTH=$([[ -z ${TOKEN_FILE:-} ]] || jq -r .authorization "$work/md.json") "${GRPCURL:-bin/grpcurl}" "${gargs[@]}" -d "$req" "$TARGET" ghconnect.broker.v1.TokenBrokerService/IssueToken | jq "$sizes"'
    def ts: (sub("\\.[0-9]+"; "") | fromdateiso8601) as $s
      | ((capture("\\.(?<f>[0-9]+)").f // "0") + "000000000")[0:9] | tonumber as $n
      | (1 + ($s | vlen)) + (if $n > 0 then 1 + ($n | vlen) else 0 end) | field(.);
    (.token | str)
    + (if .expireTime then .expireTime | ts else 0 end)
    + ([(.permissions // {}) | to_entries[] | (.key | str) + (.value | str) | field(.)] | add // 0)
    + (if (.repositorySelection // "") != "" then .repositorySelection | str else 0 end)
    + ([.repositories[]? | (if .id then (.id | tonumber | 1 + vlen) else 0 end) + (.fullName | str) | field(.)] | add // 0)
    + (if .exclusive then 2 else 0 end)')
fi
echo "request size: $REQUEST_BYTES bytes"
echo "reply size: $REPLY_BYTES bytes"
# The echo's request: reply_bytes, and a payload of zeros filling it up to
# REQUEST_BYTES (as near as the encoding allows from below).
echo_req=$(jq -cn --argjson s "$REQUEST_BYTES" --argjson r "$REPLY_BYTES" "$sizes"'
  (if $r > 0 then 1 + ($r | vlen) else 0 end) as $base
  | (first(range($s - $base; 0; -1) | select($base + field(.) <= $s)) // 0) as $n
  | {reply_bytes: $r, payload_bytes: $n}')
echo "echo payload: $(jq .payload_bytes <<<"$echo_req") bytes"
payload=$(head -c "$(jq .payload_bytes <<<"$echo_req")" /dev/zero | base64 -w0)
run ghconnect.loadtest.v1.EchoService/Echo "$(jq -c --arg p "$payload" '{reply_bytes, payload: $p}' <<<"$echo_req")" "$work/base.json"
run ghconnect.broker.v1.TokenBrokerService/IssueToken "$req" "$work/cand.json"
summary "Echo of $REQUEST_BYTES and $REPLY_BYTES bytes (baseline)" "$work/base.json"
summary "IssueToken" "$work/cand.json"
jq -rn --slurpfile b "$work/base.json" --slurpfile c "$work/cand.json" '
  def p99(r): r.latencyDistribution[] | select(.percentage == 99) | .latency;
  "ratio IssueToken/Echo: throughput \((($c[0].rps / $b[0].rps) * 100 | round) / 100), p99 \(((p99($c[0]) / p99($b[0])) * 100 | round) / 100)"'
for f in base cand; do
  errs=$(jq -r '[.statusCodeDistribution | to_entries[] | select(.key != "OK") | .value] | add // 0' "$work/$f.json")
  if [[ $errs != 0 ]]; then
    echo "$f: $errs calls failed: $(jq -c .errorDistribution "$work/$f.json")" >&2
    exit 1
  fi
done
