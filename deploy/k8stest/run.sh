#!/usr/bin/env bash
# A real single-node Kubernetes 1.34 on this machine, and ghconnect's
# production overlay on it (through the test overlay deploy/k8s/overlays/test
# and the test dependencies of deploy/k8stest/deps).
#
#   deploy/k8stest/run.sh up     bring it up and leave it running; prints the kubeconfig
#   deploy/k8stest/run.sh down   stop everything `up` started and remove its folder
#   deploy/k8stest/run.sh test   up, wait until every Deployment is Available, check
#                                DNS, the gateway's /readyz, the ServiceAccounts, the
#                                reconciler lease, run e2e TestKubernetes, down
#   deploy/k8stest/run.sh env    print the export line for the running cluster's kubeconfig
#
# Needs root (network namespace, cgroups, containerd) and, when missing,
# installs from Debian: containerd, runc, containernetworking-plugins,
# iptables, conntrack, busybox-static (the Vault Agent image's /bin/sh),
# docker.io and debootstrap (deploy/images.sh builds
# the images with a dockerd; this script starts one when none runs, and
# stops it by its PID once the images are saved).
#
# What runs, all from Go modules built here (deploy/k8stest/tools: Kubernetes
# v1.34.4 and an embedded etcd; deploy/k8stest/coredns; deploy/k8stest/vault:
# Vault's own command, for the Vault Agent sidecars; deploy/k8stest/helpers)
# into $K8STEST_CACHE (default ~/.cache/ghconnect-k8stest; rebuilt when
# their sources change), plus Debian's containerd 1.6 and CNI plugins:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#   containerd (its own instance, CRI enabled), kubelet, kube-proxy
#   (iptables mode): processes on this machine, each in the network
#   namespace "ghconnect-k8stest" (the node), which a veth pair joins to the
#   host: host 10.250.0.1, node 10.250.0.2 (API server https://10.250.0.2:6443).
#   Pods get 10.244.0.0/24 (CNI ptp + host-local), Services 10.96.0.0/24;
#   the host routes both into the node, so ClusterIPs and pod IPs answer
#   from the host too. Every iptables rule (kube-proxy's, the kubelet's) is
#   in the node's namespace and goes with it. CoreDNS runs in the cluster
#   (kube-system/coredns, Service 10.96.0.10).
#
# Everything lives in one folder, $K8STEST_DIR (default a new
# /tmp/ghconnect-k8stest.XXXXXX; its path is kept in
# /tmp/ghconnect-k8stest.current for `down`): certificates, kubeconfigs,
# etcd's data, containerd's root and state, the kubelet's root, pod logs, a
# log per component (logs/), the PID of every process started (pids/).
# `down` (and a failing or interrupted `up`/`test`) stops the kubelet,
# removes every pod sandbox through the CRI (crirm), stops each process by
# its recorded PID, unmounts what is left under the folder, deletes the
# network namespace (and with it the veth pair and the host's routes),
# removes the cgroups it made (/k8stest in each v1 hierarchy), restores the
# kernel settings the kubelet changes (vm.overcommit_memory, kernel.panic,
# kernel.panic_on_oops, …) and removes the folder (kept on failure, or with
# K8STEST_KEEP=1).
#
# Settings: K8STEST_DIR, K8STEST_CACHE, K8STEST_IMAGES=reuse (skip
# deploy/images.sh and dockerd when the saved image archive from an earlier
# run is there), K8STEST_WAIT (seconds to wait for Deployments, default 300),
# K8STEST_KEEP=1 (keep the folder after down).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HERE=$ROOT/deploy/k8stest
export GOTOOLCHAIN=local
CACHE=${K8STEST_CACHE:-$HOME/.cache/ghconnect-k8stest}
POINTER=/tmp/ghconnect-k8stest.current
WAIT=${K8STEST_WAIT:-300}
K8S_VERSION=v1.34.4
COREDNS_VERSION=v1.13.2
VAULT_VERSION=1.19.0
BUSYBOX=/bin/busybox

NETNS=ghconnect-k8stest
HOST_IF=k8st-host
NODE_IF=k8st-node
HOST_IP=10.250.0.1
NODE_IP=10.250.0.2
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/24
API_SVC_IP=10.96.0.1
DNS_IP=10.96.0.10
NODE_NAME=k8stest
CGROUP_ROOT=k8stest
API=https://$NODE_IP:6443
# The kernel settings the kubelet sets (protectKernelDefaults: false);
# saved before it starts and restored by down.
KERNEL_KNOBS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Images built by deploy/images.sh that the cluster runs.
GHCONNECT_IMAGES=(registry broker featuregate gateway vaultdev ghemu postgres)

log() { printf 'k8stest: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

T0=$SECONDS
PHASE_START=$SECONDS
timings=()
phase() {
  local took=$((SECONDS - PHASE_START))
  timings+=("$(printf '%-34s %4ds' "$1" "$took")")
  log "$1 (${took}s)"
  PHASE_START=$SECONDS
}

D=
MODE=
DOCKERD_PID=
inns() { nsenter --net="/run/netns/$NETNS" -- "$@"; }
kc() { "$CACHE/bin/kubectl" --kubeconfig "$D/admin.kubeconfig" "$@"; }

# --- processes -------------------------------------------------------------

# start NAME BINARY ARGS…: runs BINARY in the node's network namespace, in a
# session of its own (so it outlives `up`), output in logs/NAME.log; its PID
# and executable go to pids/NAME.
start() {
  local name=$1 exe
  shift
  exe=$(readlink -f "$1")
  rm -f "$D/pids/$name"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$D/pids/$name.tmp" \
    nsenter --net="/run/netns/$NETNS" -- "$@" >"$D/logs/$name.log" 2>&1 </dev/null &
  for _ in $(seq 1 50); do [ -s "$D/pids/$name.tmp" ] && break; sleep 0.1; done
  [ -s "$D/pids/$name.tmp" ] || die "$name did not start"
  printf '%s\n%s\n' "$(cat "$D/pids/$name.tmp")" "$exe" >"$D/pids/$name"
  rm -f "$D/pids/$name.tmp"
}

# running NAME: whether the process recorded for NAME still runs (same PID,
# same executable).
running() {
  local f=$D/pids/$1 pid exe
  [ -f "$f" ] || return 1
  pid=$(sed -n 1p "$f")
  exe=$(sed -n 2p "$f")
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]
}

# stop NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 15).
stop() {
  local f=$D/pids/$1 pid i
  [ -f "$f" ] || return 0
  pid=$(sed -n 1p "$f")
  if running "$1"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < ${2:-15} * 5; i++)); do running "$1" || break; sleep 0.2; done
    if running "$1"; then
      log "$1 ($pid) did not stop on SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

# wait_for WHAT SECONDS COMMAND…: until COMMAND succeeds.
wait_for() {
  local what=$1 secs=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { log "$what: not within ${secs}s"; return 1; }
    sleep 0.3
  done
}

# --- teardown ----------------------------------------------------------------

teardown() {
  [ -n "$D" ] && [ -d "$D" ] || { cleanup_netns; return 0; }
  local t=$SECONDS pid f
  log "stopping the cluster in $D"
  stop kubelet 30
  if running containerd; then
    "$CACHE/bin/crirm" -endpoint "$D/run/containerd.sock" -timeout 90s >>"$D/logs/crirm.log" 2>&1 \
      || log "crirm failed (logs/crirm.log); killing what is left"
  fi
  stop kube-router
  stop kube-proxy
  stop containerd 30
  # Shims whose task outlived containerd, then any process left in the
  # pods' cgroups (all of them started by this cluster's containerd).
  for f in "$D"/containerd/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    case $(readlink "/proc/$pid/exe" 2>/dev/null) in *containerd-shim*) kill -KILL "$pid" 2>/dev/null || true ;; esac
  done
  for f in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [ -d "$f" ] || continue
    find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r pid; do
      [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    done
  done
  stop kube-scheduler
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
  [ -n "$DOCKERD_PID" ] && stop_dockerd
  # Mounts left under the folder (volumes, rootfs, netns), deepest first.
  awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
  # The kubelet's /var/log/containers links into our pod logs.
  find /var/log/containers -maxdepth 1 -type l -lname "$D/*" -delete 2>/dev/null || true
  # CNI's result cache for our network.
  rm -f /var/lib/cni/results/k8stest-* 2>/dev/null || true
  cleanup_netns
  for f in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [ -d "$f" ] && find "$f" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$f" ] && log "cgroup $f is still there"
  done
  if [ -s "$D/kernel-settings" ]; then
    while read -r k v; do sysctl -q -w "$k=$v" >/dev/null || log "could not restore $k=$v"; done <"$D/kernel-settings"
    rm -f "$D/kernel-settings"
  fi
  [ "$(cat "$POINTER" 2>/dev/null)" = "$D" ] && rm -f "$POINTER"
  log "stopped in $((SECONDS - t))s"
}

cleanup_netns() {
  if ip netns list 2>/dev/null | grep -qw "^$NETNS"; then
    ip netns del "$NETNS" || log "cannot delete network namespace $NETNS"
  fi
  # The veth pair goes with the namespace; a host end left from a broken run too.
  ip link show "$HOST_IF" >/dev/null 2>&1 && ip link del "$HOST_IF" 2>/dev/null || true
}

stop_dockerd() {
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$DOCKERD_PID" 2>/dev/null && log "dockerd ($DOCKERD_PID) did not stop"
  DOCKERD_PID=
}

diagnose() {
  [ -n "$D" ] && [ -d "$D/logs" ] || return 0
  if [ -s "$D/admin.kubeconfig" ] && running kube-apiserver; then
    log "pods:"
    kc get pods -A -o wide 2>&1 | sed 's/^/  /' >&2 || true
    kc get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 25 | sed 's/^/  /' >&2 || true
    local ns pod
    kc get pods -A --no-headers 2>/dev/null | awk '$3 !~ /^([0-9]+)\/\1$/ || $4 != "Running" { print $1, $2 }' | head -n 8 |
      while read -r ns pod; do
        log "--- $ns/$pod"
        kc -n "$ns" describe pod "$pod" 2>&1 | sed -n '/^Events:/,$p' | tail -n 12 >&2 || true
        kc -n "$ns" logs "$pod" --all-containers --tail 15 2>&1 | sed 's/^/  /' >&2 || true
      done
  fi
  local f
  for f in "$D"/logs/*.log; do
    [ -s "$f" ] || continue
    log "--- last lines of logs/$(basename "$f")"
    tail -n 15 "$f" | grep -v 'VAULT_UNSEAL_KEY=' >&2 || true
  done
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ -n "$DOCKERD_PID" ] && stop_dockerd
  if [ $rc -ne 0 ]; then
    log "FAILED (exit $rc)"
    diagnose
    teardown
    [ -n "$D" ] && [ -d "$D" ] && log "the folder is kept for a look: $D (remove it by hand)"
  elif [ "$MODE" = test ]; then
    PHASE_START=$SECONDS
    teardown
    phase "down"
    [ "${K8STEST_KEEP:-}" = 1 ] || rm -rf "$D"
  fi
  if [ ${#timings[@]} -gt 0 ]; then
    echo "k8stest timings:"
    printf '  %s\n' "${timings[@]}"
    printf '  %-34s %4ds\n' total $((SECONDS - T0))
  fi
  exit $rc
}

# --- preparation -------------------------------------------------------------

need_tools() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespace, cgroups, containerd)"
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/ptp ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v ipset >/dev/null || missing+=(ipset)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  # A static busybox: the Vault Agent image's /bin/sh.
  case $(LC_ALL=C ldd "$BUSYBOX" 2>&1) in *"not a dynamic executable"*) ;; *) missing+=(busybox-static) ;; esac
  if [ "${K8STEST_IMAGES:-}" != reuse ]; then
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  fi
  if [ ! -d /sys/fs/cgroup/memory ]; then
    log "note: no cgroup v1 memory hierarchy; Kubernetes 1.34 runs on cgroup v2 too, but this script was made on cgroup v1"
  fi
}

# hash FILES…: one hash over the files' names and contents.
hash_files() { for f in "$@"; do printf '%s\n' "$f"; cat "$f"; done | sha256sum | cut -c1-16; }

# build_once NAME KEY COMMAND…: runs COMMAND unless the stamp NAME holds KEY.
build_once() {
  local name=$1 key=$2
  shift 2
  if [ "$(cat "$CACHE/bin/.$name" 2>/dev/null)" = "$key" ]; then return 0; fi
  log "building $name (the first time takes minutes: see $CACHE/build-$name.log)…"
  if ! "$@" >"$CACHE/build-$name.log" 2>&1; then
    tail -n 30 "$CACHE/build-$name.log" >&2
    die "building $name failed"
  fi
  echo "$key" >"$CACHE/bin/.$name"
}

build_tools() {
  mkdir -p "$CACHE/bin" "$CACHE/images"
  local gov key
  gov=$(go env GOVERSION)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  ld+=" -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  key=$(cd "$HERE/tools" && { echo "$gov"; hash_files go.mod go.sum $(find . -name '*.go' | sort); } | sha256sum | cut -c1-16)
  build_once kubernetes "$key" env -C "$HERE/tools" GOWORK=off go build -trimpath -ldflags "$ld" -o "$CACHE/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
    k8s.io/kubernetes/cmd/kubectl ./cmd/etcd ./cmd/crirm
  key=$(cd "$HERE/coredns" && { echo "$gov"; hash_files go.mod go.sum main.go; } | sha256sum | cut -c1-16)
  build_once coredns "$key" env -C "$HERE/coredns" GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CACHE/bin/coredns" .
  key=$(cd "$ROOT" && { echo "$gov"; hash_files deploy/k8stest/helpers/go.mod deploy/k8stest/helpers/go.sum \
    $(find deploy/k8stest/helpers dev/oidcdev -name '*.go' | sort) dev/go.mod dev/go.sum; } | sha256sum | cut -c1-16)
  build_once helpers "$key" env -C "$HERE/helpers" GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CACHE/bin/" \
    ./cmd/ociimage ./cmd/pause ./cmd/oidcdev ./cmd/dnsq ./cmd/tcpprobe
  # kube-router, the NetworkPolicy engine.
  key=$(cd "$HERE/kuberouter" && { echo "$gov"; hash_files go.mod go.sum tools.go; } | sha256sum | cut -c1-16)
  build_once kube-router "$key" env -C "$HERE/kuberouter" GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
    -o "$CACHE/bin/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  # Vault's own CLI and agent (the vault-agent sidecars' image, and the
  # README's Kubernetes auth steps), from the Vault module.
  key=$(cd "$HERE/vault" && { echo "$gov"; hash_files go.mod go.sum main.go; } | sha256sum | cut -c1-16)
  build_once vault "$key" env -C "$HERE/vault" GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CACHE/bin/vault" .
  # ghconnect's own tools for the setup (Vault, licenses): from the workspace.
  go build -o "$D/bin/" ./services/gateway/cmd/ghconnectctl ./services/registry/cmd/mintlicense \
    || die "building ghconnectctl and mintlicense failed"
}

# Our images, without a daemon: the pause image, CoreDNS and oidcdev.
build_own_images() {
  local o=$D/images b=$CACHE/bin
  mkdir -p "$o"
  "$b/ociimage" -o "$o/pause.tar" -name k8stest.local/pause:1 -user 65535:65535 -entrypoint /pause -file "/pause=$b/pause:0755"
  "$b/ociimage" -o "$o/coredns.tar" -name "k8stest.local/coredns:$COREDNS_VERSION" -user 65532:65532 \
    -entrypoint /coredns -file "/coredns=$b/coredns:0755"
  "$b/ociimage" -o "$o/oidcdev.tar" -name k8stest.local/oidcdev:dev -user 65532:65532 \
    -entrypoint /oidcdev -file "/oidcdev=$b/oidcdev:0755"
  "$b/ociimage" -o "$o/tcpprobe.tar" -name k8stest.local/tcpprobe:dev -user 65532:65532 \
    -entrypoint /tcpprobe -file "/tcpprobe=$b/tcpprobe:0755"
  # Vault Agent: the vault binary, and busybox as the /bin/sh of the
  # sidecar's startup probe (test -s on the token file).
  "$b/ociimage" -o "$o/vault.tar" -name k8stest.local/vault:$VAULT_VERSION -user 65532:65532 -env PATH=/bin \
    -entrypoint /bin/vault -file "/bin/vault=$b/vault:0755" -file "/bin/sh=$BUSYBOX:0755"
}

# ghconnect's images: deploy/images.sh (with a dockerd, ours if none runs),
# retagged k8stest.local/ghconnect/<name>:dev and saved into one archive,
# cached by the images' IDs.
ghconnect_images() {
  local archive=$CACHE/images/ghconnect.tar
  if [ "${K8STEST_IMAGES:-}" = reuse ] && [ -s "$archive" ]; then
    log "reusing $archive (K8STEST_IMAGES=reuse)"
    ln -sf "$archive" "$D/images/ghconnect.tar"
    return 0
  fi
  if ! docker info >/dev/null 2>&1; then
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then rm -f /var/run/docker.pid; fi
    log "starting dockerd for deploy/images.sh (log: logs/dockerd.log)"
    dockerd --bridge=none --iptables=false >"$D/logs/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    wait_for dockerd 60 docker info || die "dockerd did not answer"
  fi
  deploy/images.sh >"$D/logs/images.log" 2>&1 || { tail -n 30 "$D/logs/images.log" >&2; die "deploy/images.sh failed"; }
  local ids="" n refs=()
  for n in "${GHCONNECT_IMAGES[@]}"; do
    ids+=$(docker image inspect -f '{{.Id}}' "ghconnect/$n:dev")
    refs+=("k8stest.local/ghconnect/$n:dev")
  done
  ids=$(printf '%s' "$ids" | sha256sum | cut -c1-16)
  if [ "$(cat "$archive.id" 2>/dev/null)" != "$ids" ] || [ ! -s "$archive" ]; then
    for n in "${GHCONNECT_IMAGES[@]}"; do docker tag "ghconnect/$n:dev" "k8stest.local/ghconnect/$n:dev"; done
    docker save -o "$archive.tmp" "${refs[@]}"
    docker rmi "${refs[@]}" >/dev/null
    mv "$archive.tmp" "$archive"
    echo "$ids" >"$archive.id"
  fi
  ln -sf "$archive" "$D/images/ghconnect.tar"
  [ -n "$DOCKERD_PID" ] && stop_dockerd
  return 0
}

# --- the node's network --------------------------------------------------------

make_network() {
  ip netns add "$NETNS"
  ip link add "$HOST_IF" type veth peer name "$NODE_IF" netns "$NETNS"
  ip addr add "$HOST_IP/30" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  inns ip link set lo up
  inns ip addr add "$NODE_IP/30" dev "$NODE_IF"
  inns ip link set "$NODE_IF" up
  inns sysctl -q -w net.ipv4.ip_forward=1
  # No default route in the node: pods reach nothing beyond this machine.
  # Service IPs get a route so that processes in the node can connect to
  # them (kube-proxy's OUTPUT rules then rewrite the address).
  inns ip route add "$SVC_CIDR" dev "$NODE_IF"
  # The host reaches pods and Services through the node.
  ip route add "$POD_CIDR" via "$NODE_IP" dev "$HOST_IF"
  ip route add "$SVC_CIDR" via "$NODE_IP" dev "$HOST_IF"
}

# --- certificates and kubeconfigs --------------------------------------------

# cert DIR NAME SUBJECT EXT [CA]: an EC P-256 key and a certificate signed by
# DIR/CA (default ca), with the extensions EXT (openssl -extfile lines).
cert() {
  local dir=$1 name=$2 subj=$3 ext=$4 ca=${5:-ca}
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" -set_serial "0x$(openssl rand -hex 12)" \
    -days 30 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

ca() { # DIR NAME CN
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/$2.key" 2>/dev/null
  openssl req -x509 -new -key "$1/$2.key" -subj "/CN=$3" -days 30 -sha256 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out "$1/$2.crt" 2>/dev/null
}

client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'

kubeconfig() { # FILE USER CERTNAME
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: k8stest
    cluster:
      certificate-authority: $D/pki/ca.crt
      server: $API
users:
  - name: $2
    user:
      client-certificate: $D/pki/$3.crt
      client-key: $D/pki/$3.key
contexts:
  - name: k8stest
    context:
      cluster: k8stest
      user: $2
current-context: k8stest
EOF
}

make_pki() {
  local p=$D/pki
  mkdir -p "$p"
  ca "$p" ca k8stest-ca
  cert "$p" apiserver /CN=kube-apiserver "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,IP:$API_SVC_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert "$p" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client_ext"
  cert "$p" admin "/O=system:masters/CN=k8stest-admin" "$client_ext"
  cert "$p" controller-manager /CN=system:kube-controller-manager "$client_ext"
  cert "$p" scheduler /CN=system:kube-scheduler "$client_ext"
  cert "$p" kube-proxy /CN=system:kube-proxy "$client_ext"
  cert "$p" kube-router /CN=k8stest:kube-router "$client_ext"
  cert "$p" kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" "$client_ext"
  cert "$p" kubelet "/CN=$NODE_NAME" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$p/sa.key" 2>/dev/null
  openssl pkey -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  kubeconfig "$D/admin.kubeconfig" k8stest-admin admin
  kubeconfig "$p/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  kubeconfig "$p/scheduler.kubeconfig" system:kube-scheduler scheduler
  kubeconfig "$p/kube-proxy.kubeconfig" system:kube-proxy kube-proxy
  kubeconfig "$p/kube-router.kubeconfig" k8stest:kube-router kube-router
  kubeconfig "$p/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet-client
  chmod 600 "$p"/*.key "$D/admin.kubeconfig"
}

# --- control plane -------------------------------------------------------------

start_control_plane() {
  local p=$D/pki b=$CACHE/bin
  mkdir -p "$D/etcd"
  start etcd "$b/etcd" -data-dir "$D/etcd" -client-url http://127.0.0.1:2379 -peer-url http://127.0.0.1:2380
  wait_for etcd 30 grep -q 'etcd ready' "$D/logs/etcd.log" || die "etcd did not start"
  start kube-apiserver "$b/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$NODE_IP" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range="$SVC_CIDR" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction,PodSecurity \
    --allow-privileged=false --profiling=false --v=1
  wait_for kube-apiserver 90 curl -sf --cacert "$p/ca.crt" "$API/readyz" || die "kube-apiserver is not ready"
  start kube-controller-manager "$b/kube-controller-manager" \
    --kubeconfig="$p/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$p/controller-manager.kubeconfig" --authorization-kubeconfig="$p/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SVC_CIDR" --profiling=false --v=1
  start kube-scheduler "$b/kube-scheduler" \
    --kubeconfig="$p/scheduler.kubeconfig" \
    --authentication-kubeconfig="$p/scheduler.kubeconfig" --authorization-kubeconfig="$p/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
}

# --- the node: containerd, kubelet, kube-proxy ---------------------------------

start_containerd() {
  mkdir -p "$D/containerd/root" "$D/containerd/state" "$D/run" "$D/cni/net.d" "$D/cni/ipam"
  cat >"$D/cni/net.d/10-k8stest.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "k8stest",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$D/cni/ipam"
      }
    }
  ]
}
EOF
  cat >"$D/containerd/config.toml" <<EOF
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$D/run/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "k8stest.local/pause:1"
  # This machine's root lacks CAP_SYS_RESOURCE: runc cannot lower
  # oom_score_adj below its own, so keep it at least the runtime's.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$D/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni/net.d"
EOF
  start containerd "$(command -v containerd)" --config "$D/containerd/config.toml" --log-level warn
  wait_for containerd 30 ctr --address "$D/run/containerd.sock" version || die "containerd did not start"
}

load_images() {
  local f
  for f in "$D"/images/*.tar; do
    ctr --address "$D/run/containerd.sock" -n k8s.io images import --all-platforms "$f" >>"$D/logs/images-import.log" 2>&1 \
      || { tail -n 20 "$D/logs/images-import.log" >&2; die "importing $(basename "$f") failed"; }
  done
  # The same images as a second tag, for the test's rolling update.
  local n
  for n in registry broker featuregate gateway; do
    ctr --address "$D/run/containerd.sock" -n k8s.io images tag --force "k8stest.local/ghconnect/$n:dev" \
      "k8stest.local/ghconnect/$n:rollout" >>"$D/logs/images-import.log" 2>&1 || die "tagging $n failed"
  done
}

start_kubelet() {
  local p=$D/pki k v
  # The cgroups the pods go under: /k8stest in every v1 hierarchy.
  for k in /sys/fs/cgroup/*/; do
    [ -e "$k/cgroup.procs" ] || continue
    case $k in */unified/) continue ;; esac
    mkdir -p "$k$CGROUP_ROOT"
    if [ -e "$k/cpuset.cpus" ]; then
      cat "$k/cpuset.cpus" >"$k$CGROUP_ROOT/cpuset.cpus"
      cat "$k/cpuset.mems" >"$k$CGROUP_ROOT/cpuset.mems"
    fi
  done
  [ -d /sys/fs/cgroup/unified ] && mkdir -p "/sys/fs/cgroup/unified/$CGROUP_ROOT"
  : >"$D/kernel-settings"
  for k in "${KERNEL_KNOBS[@]}"; do
    v=$(sysctl -n "$k" 2>/dev/null) && echo "$k $v" >>"$D/kernel-settings"
  done
  mkdir -p "$D/kubelet" "$D/pod-logs" "$D/node"
  # Pods resolve through cluster DNS only: no host name server.
  echo "# deploy/k8stest: no upstream name server" >"$D/node/resolv.conf"
  cat >"$D/node/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $p/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $p/kubelet.crt
tlsPrivateKeyFile: $p/kubelet.key
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
containerRuntimeEndpoint: unix://$D/run/containerd.sock
resolvConf: $D/node/resolv.conf
failSwapOn: false
protectKernelDefaults: false
volumePluginDir: $D/kubelet/volume-plugins
podLogsDir: $D/pod-logs
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
serializeImagePulls: false
EOF
  start kubelet "$CACHE/bin/kubelet" --config="$D/node/kubelet.yaml" --kubeconfig="$p/kubelet.kubeconfig" \
    --root-dir="$D/kubelet" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
}

start_kube_proxy() {
  cat >"$D/node/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $D/pki/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
mode: iptables
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  start kube-proxy "$CACHE/bin/kube-proxy" --config="$D/node/kube-proxy.yaml" --v=1
}

# kube-router as the NetworkPolicy engine only (no routing, no service
# proxy): iptables and ipset rules in the node's namespace for every pod,
# from the policies it watches.
start_kube_router() {
  start kube-router "$CACHE/bin/kube-router" --kubeconfig="$D/pki/kube-router.kubeconfig" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --hostname-override="$NODE_NAME" --health-port=20244 --metrics-port=0 --v=1
}

node_ready() { [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }

# wait_available NAMESPACE: every Deployment there Available (and rolled out).
wait_available() {
  local ns=$1 d
  for d in $(kc -n "$ns" get deploy -o name); do
    kc -n "$ns" rollout status "$d" --timeout="${WAIT}s" >/dev/null || { log "$ns/$d is not rolled out"; return 1; }
  done
  kc -n "$ns" wait deploy --all --for=condition=Available --timeout="${WAIT}s" >/dev/null
}

# --- ghconnect -------------------------------------------------------------------

random() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40; }

make_secrets() {
  local s=$D/secrets t
  mkdir -p "$s/tls"
  chmod 700 "$s"
  # The admin, and search-svc: an internal service of the server's that
  # asks the broker for tokens and searches (the test's caller).
  : >"$s/tokens"
  for t in admin search-svc; do
    random >"$s/$t-token"
    echo "$t sha256:$(sha256sum <"$s/$t-token" | cut -d' ' -f1)" >>"$s/tokens"
  done
  random >"$s/pg-password"
  random >"$s/vault-root-token"
  random >"$s/oidc-client-secret"
  "$D/bin/mintlicense" -issuer-key "$s/license-issuer.key" -issuers-out "$s/license-issuers" \
    -customer "Octo Corp" -seats 500 >"$s/dev.ghl" 2>"$D/logs/mintlicense.log"
  cat >"$s/broker-policy.json" <<'EOF'
{"callers": {
  "featuregate": {"connections": ["*"], "permissions": {"contents": "read", "issues": "read", "metadata": "read"}, "repositories": ["*"], "user_tokens": true},
  "search-svc": {"connections": ["*"], "permissions": {"contents": "read", "metadata": "read"}, "repositories": ["*"]},
  "admin": {"connections": ["*"], "permissions": {"metadata": "read"}, "repositories": ["*"], "exclusive": true, "admin": true},
  "registry": {"connections": ["*"], "permissions": {"metadata": "read"}, "repositories": ["*"], "admin": true}
}}
EOF
  # The services' CA and certificates (CN = the service: the callers'
  # identity), valid for the names the callers dial.
  ca "$s/tls" ca ghconnect-k8stest-ca
  for t in registry broker featuregate gateway search-svc; do
    cert "$s/tls" "$t" "/CN=$t" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$t,DNS:$t.ghconnect,DNS:$t.ghconnect.svc,DNS:$t.ghconnect.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
    # The names the e2e test's PKI helpers look for.
    ln -s "$t.crt" "$s/tls/$t.pem"
    ln -s "$t.key" "$s/tls/$t-key.pem"
  done
  ln -s ca.crt "$s/tls/ca.pem"
  # Who may call what: the default members (pkg/auth/roles.json), and
  # search-svc as an internal service that also uses the feature gate.
  cat >"$s/authz.json" <<'EOF'
{"principals": {"*": ["token-client"], "admin": ["admin"], "registry": ["registry"], "broker": ["broker"],
  "featuregate": ["featuregate"], "gateway": ["gateway"], "runner": ["actions-runner"], "search-svc": ["feature-client"]},
 "forwarders": {"gateway": ["admin", "auditor", "account-holder"]}}
EOF
}

# secret NS NAME ARGS…: kubectl create secret, or replace it.
secret() {
  local ns=$1 name=$2
  shift 2
  kc -n "$ns" create secret "$@" "$name" --dry-run=client -o yaml | kc apply --server-side --force-conflicts -f - >/dev/null
}

apply_deps() {
  local s=$D/secrets
  kc apply --server-side -f "$HERE/deps/namespace.yaml" >/dev/null
  # Its pods run as the namespace's default ServiceAccount, which the
  # controller-manager creates a moment after the namespace.
  wait_for "ServiceAccount ghconnect-deps/default" 60 kc -n ghconnect-deps get serviceaccount default || return 1
  secret ghconnect-deps ghconnect-deps-postgres generic --from-file=password="$s/pg-password"
  secret ghconnect-deps ghconnect-deps-vault generic --from-file=root-token="$s/vault-root-token"
  secret ghconnect-deps ghconnect-deps-oidc generic --from-file=client-secret="$s/oidc-client-secret"
  kc apply --server-side -k "$HERE/deps" >/dev/null
}

# Vault's side with vaultdev's root token: transit and the policies
# (`ghconnectctl vault-setup`), then Kubernetes auth for the Vault Agents,
# step by step as the README's "Vault: Kubernetes auth" says, with Vault's
# own CLI (the binary of the agent's image). Vault runs in the cluster, so
# its config names the API server's in-cluster address and nothing else.
vault_setup() {
  local s=$D/secrets addr
  addr=http://$(kc -n ghconnect-deps get svc vault -o jsonpath='{.spec.clusterIP}'):8200
  wait_for "Vault at $addr" 60 curl -sf "$addr/v1/sys/health" || return 1
  mkdir -p "$s/vault-creds"
  "$D/bin/ghconnectctl" vault-setup -vault-addr "$addr" -vault-token-file "$s/vault-root-token" -policies deploy/vault \
    -out "$s/vault-creds" >"$D/logs/vault-setup.log" 2>&1 \
    || { cat "$D/logs/vault-setup.log" >&2; return 1; }
  (
    export VAULT_ADDR=$addr VAULT_TOKEN HOME=$D/vault-cli
    VAULT_TOKEN=$(cat "$s/vault-root-token")
    mkdir -p "$HOME"
    vault() { "$CACHE/bin/vault" "$@" >>"$D/logs/vault-cli.log" 2>&1; }
    vault auth enable kubernetes || exit 1
    vault write auth/kubernetes/config kubernetes_host=https://kubernetes.default.svc:443 || exit 1
    for svc in registry broker; do
      vault write "auth/kubernetes/role/ghconnect-$svc" "bound_service_account_names=ghconnect-$svc" \
        bound_service_account_namespaces=ghconnect audience=vault "token_policies=ghconnect-$svc" \
        token_ttl=1h token_max_ttl=24h || exit 1
    done
  ) || { cat "$D/logs/vault-cli.log" >&2; return 1; }
}

apply_ghconnect() {
  local s=$D/secrets pw db t
  kc apply --server-side -f "$ROOT/deploy/k8s/base/namespace.yaml" >/dev/null
  pw=$(cat "$s/pg-password")
  secret ghconnect ghconnect-tokens generic --from-file=tokens="$s/tokens"
  secret ghconnect ghconnect-license-issuers generic --from-file=license-issuers="$s/license-issuers"
  secret ghconnect ghconnect-broker-policy generic --from-file=policy.json="$s/broker-policy.json"
  secret ghconnect ghconnect-authz generic --from-file=authz.json="$s/authz.json"
  for t in registry:ghconnect featuregate:featuregate broker:broker gateway:gateway; do
    db=postgres://ghconnect:$pw@postgres.ghconnect-deps.svc.cluster.local:5432/${t#*:}?sslmode=disable
    secret ghconnect "ghconnect-${t%%:*}-database" generic --from-literal=url="$db"
  done
  for t in registry broker featuregate gateway; do
    secret ghconnect "ghconnect-$t-tls" tls --cert="$s/tls/$t.crt" --key="$s/tls/$t.key"
  done
  secret ghconnect ghconnect-ca generic --from-file=ca.crt="$s/tls/ca.crt"
  # Vault serves plain HTTP here; the Secret must exist all the same.
  secret ghconnect ghconnect-vault-ca generic --from-file=ca.crt="$s/tls/ca.crt"
  secret ghconnect ghconnect-gateway-oidc generic --from-file=client-secret="$s/oidc-client-secret"
  kc apply --server-side -k "$ROOT/deploy/k8s/overlays/test" >"$D/logs/apply-ghconnect.log" 2>&1 \
    || { cat "$D/logs/apply-ghconnect.log" >&2; return 1; }
}

# --- the checks of `test` ------------------------------------------------------

# Cluster DNS from the host (through kube-proxy's UDP rules to CoreDNS):
# each headless Service resolves to all its ready pods, the gateway's to
# its ClusterIP. A Deployment is Available before every one of its pods
# is ready and published, so the answers are awaited, not taken once.
dns_answers() {
  "$CACHE/bin/dnsq" -server "$DNS_IP:53" registry.ghconnect.svc.cluster.local broker.ghconnect.svc.cluster.local \
    featuregate.ghconnect.svc.cluster.local gateway.ghconnect.svc.cluster.local postgres.ghconnect-deps.svc.cluster.local
}

# dns_complete succeeds when every Service lists as many addresses as it
# should (its replicas; the gateway its one ClusterIP).
dns_complete() {
  local out n
  out=$(dns_answers) || return 1
  for n in registry:2 broker:3 featuregate:2 gateway:1; do
    [ "$(printf '%s\n' "$out" | awk -v n="${n%%:*}.ghconnect.svc.cluster.local" '$1 == n { print split($2, a, ",") }')" = "${n#*:}" ] || return 1
  done
}

check_dns() {
  if ! wait_for "every ready pod in cluster DNS" 60 dns_complete; then
    dns_answers 2>&1 | sed 's/^/  /' >&2
    return 1
  fi
  dns_answers | sed 's/^/  /' >&2
  log "cluster DNS: headless Services list every ready pod"
}

check_gateway() {
  local ip pf_pid out
  ip=$(kc -n ghconnect get svc gateway -o jsonpath='{.spec.clusterIP}')
  out=$(curl -sS --max-time 5 --cacert "$D/secrets/tls/ca.crt" \
    --resolve "gateway.ghconnect.svc.cluster.local:8080:$ip" https://gateway.ghconnect.svc.cluster.local:8080/readyz) \
    || { log "gateway /readyz through its ClusterIP $ip failed"; return 1; }
  log "gateway /readyz through ClusterIP $ip (kube-proxy): $out"
  kc -n ghconnect port-forward svc/gateway 18443:8080 >"$D/logs/port-forward.log" 2>&1 &
  pf_pid=$!
  if ! wait_for port-forward 20 curl -sf --cacert "$D/secrets/tls/ca.crt" https://127.0.0.1:18443/readyz; then
    kill "$pf_pid" 2>/dev/null
    cat "$D/logs/port-forward.log" >&2
    return 1
  fi
  out=$(curl -sS --cacert "$D/secrets/tls/ca.crt" https://127.0.0.1:18443/readyz)
  kill "$pf_pid" 2>/dev/null
  wait "$pf_pid" 2>/dev/null || true
  log "gateway /readyz through kubectl port-forward: $out"
}

# The services' ServiceAccounts hold nothing but what every authenticated
# identity may do (review its own access): no Secret, no Pod, no Lease, no
# TokenReview. (Which container mounts which token: e2e TestKubernetes.)
check_serviceaccounts() {
  local sa rules extra verb what
  for sa in registry broker featuregate gateway; do
    rules=$(kc auth can-i --list -n ghconnect --as="system:serviceaccount:ghconnect:ghconnect-$sa") \
      || { log "can-i --list for ghconnect-$sa failed"; return 1; }
    # Resource rules (a first column that is not blank), less the header
    # and the self-reviews every identity has.
    extra=$(printf '%s\n' "$rules" | awk 'NR > 1 && $0 !~ /^ / && $1 !~ /^selfsubject(access|rules)?reviews\./ { print $1 }')
    if [ -n "$extra" ]; then
      log "ServiceAccount ghconnect-$sa may use: $extra"
      return 1
    fi
    for what in "get secrets" "list pods" "get leases.coordination.k8s.io" "create tokenreviews.authentication.k8s.io" "get configmaps"; do
      verb=$(kc auth can-i $what -n ghconnect --as="system:serviceaccount:ghconnect:ghconnect-$sa" 2>/dev/null || true)
      [ "$verb" = no ] || { log "ServiceAccount ghconnect-$sa: can-i $what: $verb"; return 1; }
    done
  done
  log "ServiceAccounts: registry, broker, featuregate and gateway may only review their own access"
}

# registry_leaders prints the registry pods that say they hold the
# reconciler lease (their metrics, straight at the pod's address: the host
# routes the pod range).
registry_leaders() {
  local pod ip v
  for pod in $(kc -n ghconnect get pods -l app.kubernetes.io/name=registry \
    -o jsonpath='{range .items[?(@.status.podIP)]}{.metadata.name}={.status.podIP}{" "}{end}'); do
    ip=${pod#*=}
    v=$(curl -s --max-time 3 "http://$ip:7101/metrics" | awk '$1 == "ghconnect_registry_reconciler_leader" { print $2 }')
    [ "$v" = 1 ] && echo "${pod%%=*}"
  done
  return 0
}

# one_leader_but succeeds when exactly one registry pod, not $1, holds the
# lease.
one_leader_but() {
  local l
  l=$(registry_leaders)
  [ "$(printf '%s' "$l" | grep -c .)" = 1 ] && [ "$l" != "$1" ]
}

# The registry pod holding the reconciler lease deleted: another takes it.
check_lease_move() {
  local leader next
  wait_for "one registry holding the reconciler lease" 60 one_leader_but "" || return 1
  leader=$(registry_leaders)
  kc -n ghconnect delete pod "$leader" --wait=false >/dev/null
  wait_for "another registry taking the reconciler lease from $leader" 120 one_leader_but "$leader" || return 1
  next=$(registry_leaders)
  log "the reconciler lease moved from $leader (deleted) to $next"
  wait_available ghconnect || return 1
}

# The checks written in Go (e2e TestKubernetes): the tokens the pods
# mount, the smoke test through the gateway, the Vault Agents' Kubernetes
# logins, a broker pod deleted, evictions against the budgets and a
# rolling update of every Deployment, all under traffic.
check_e2e() {
  GHCONNECT_K8S_DIR=$D GHCONNECT_K8S_DNS=$DNS_IP:53 GHCONNECT_K8S_KUBECTL=$CACHE/bin/kubectl \
    go test -count=1 -run '^TestKubernetes$' -v -timeout 20m ./e2e 2>&1 | tee "$D/logs/e2e.log" >&2
}

# --- commands ------------------------------------------------------------------

up() {
  need_tools
  if ip netns list 2>/dev/null | grep -qw "^$NETNS"; then
    die "a test cluster is running or was left behind (network namespace $NETNS): run $0 down"
  fi
  D=${K8STEST_DIR:-$(mktemp -d /tmp/ghconnect-k8stest.XXXXXX)}
  mkdir -p "$D"
  D=$(cd "$D" && pwd)
  mkdir -p "$D/pids" "$D/logs" "$D/bin" "$D/images"
  echo "$D" >"$POINTER"
  log "folder: $D"
  phase "preflight"

  build_tools
  phase "build (Kubernetes, CoreDNS, helpers)"
  build_own_images
  ghconnect_images
  phase "images (deploy/images.sh, save)"

  make_network
  make_pki
  make_secrets
  phase "network, certificates, secrets"
  # containerd first, the images importing in the background (disk-bound,
  # the longest step here) while the control plane starts.
  start_containerd
  load_images &
  local import_pid=$!
  start_control_plane
  phase "containerd, etcd, kube-apiserver ready"
  wait "$import_pid" || die "importing the images failed"
  phase "images imported"
  start_kubelet
  start_kube_proxy
  wait_for "node $NODE_NAME Ready" 120 node_ready || return 1
  # kube-router finds its node by name: after the kubelet registered it.
  kc apply --server-side -f "$HERE/cluster/kube-router.yaml" >/dev/null
  start_kube_router
  wait_for "kube-router healthy" 60 inns curl -sf http://127.0.0.1:20244/healthz || return 1
  phase "kubelet, kube-proxy, kube-router: node Ready"
  wait_for "ServiceAccount default" 60 kc -n default get serviceaccount default || return 1
  kc apply --server-side -f "$HERE/cluster/coredns.yaml" >/dev/null
  apply_deps || return 1
  wait_available kube-system || return 1
  phase "CoreDNS Available"
  wait_available ghconnect-deps || return 1
  phase "test dependencies Available"
  vault_setup || return 1
  apply_ghconnect || return 1
  wait_available ghconnect || return 1
  phase "ghconnect Deployments Available"
  kc get deploy -A | sed 's/^/  /' >&2
}

main() {
  MODE=${1:-}
  case $MODE in
    up | test)
      trap on_exit EXIT
      trap 'exit 130' INT TERM
      up
      if [ "$MODE" = test ]; then
        check_dns
        check_gateway
        check_serviceaccounts
        phase "checks (DNS, gateway /readyz, ServiceAccounts)"
        check_lease_move
        phase "the reconciler lease moves"
        check_e2e
        phase "e2e TestKubernetes (smoke, traffic through disruptions)"
      else
        cat <<EOF
k8stest: the cluster is up (Kubernetes $K8S_VERSION, node $NODE_NAME, folder $D).
  export KUBECONFIG=$D/admin.kubeconfig
  $CACHE/bin/kubectl get pods -A        (the kubectl built with it; any kubectl 1.33+ does)
  gateway: kubectl -n ghconnect port-forward svc/gateway 18443:8080, then https://127.0.0.1:18443/
           (CA $D/secrets/tls/ca.crt; admin token $D/secrets/admin-token)
  logs:    $D/logs/
  stop:    bash deploy/k8stest/run.sh down
EOF
      fi
      ;;
    down)
      D=${K8STEST_DIR:-$(cat "$POINTER" 2>/dev/null || true)}
      if [ -z "$D" ] || [ ! -d "$D" ]; then
        D=
        cleanup_netns
        log "no test cluster folder found (K8STEST_DIR or $POINTER)"
        exit 0
      fi
      teardown
      [ "${K8STEST_KEEP:-}" = 1 ] || rm -rf "$D"
      ;;
    env)
      D=$(cat "$POINTER" 2>/dev/null) || die "no test cluster is running"
      echo "export KUBECONFIG=$D/admin.kubeconfig"
      ;;
    *)
      echo "usage: $0 up|down|test|env" >&2
      exit 2
      ;;
  esac
}

main "$@"
