# hack/cluster/env.sh: settings shared by the cluster scripts. Source it.
#
# The whole cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, containerd,
# the kubelet and every pod) lives in a network namespace of its own that the caller made (the Go harness
# in internal/test/cluster re-executes itself in a new one): the pod bridge, the kube-proxy rules and
# every address below exist only there and vanish with it, and nothing in it has a route off the machine.
set -euo pipefail

CG_CLUSTER_DIR="${CG_CLUSTER_DIR:?CG_CLUSTER_DIR must name the run directory of the cluster (short: unix socket paths)}"
CLUSTER_BIN="${CLUSTER_BIN:?CLUSTER_BIN must name the output directory of hack/node.sh}"
KUBE_ASSETS="${KUBE_ASSETS:?KUBE_ASSETS must name the output directory of hack/envtest.sh}"
RUN="$CG_CLUSTER_DIR"
NODE_NAME=localhost               # also its Hostname address: the API server dials the kubelet at 127.0.0.1
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1                 # the node's (and API server's) address on the pod bridge
SERVICE_CIDR=10.96.0.0/24
API_SERVICE_IP=10.96.0.1
API_PORT=6443
ETCD_PORT=2379
BRIDGE=cg0
# Pod cgroups go below this root in every controller; down.sh removes it. Host-wide, hence one cluster at
# a time (internal/test/cluster holds a lock).
CGROUP_ROOT=/claude-guard-node
SANDBOX_IMAGE=claude-guard.local/pause:test   # internal/test/cluster.SandboxImage

log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }
# alive PID: running and not a zombie (detached services are reaped late by the machine's init).
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
