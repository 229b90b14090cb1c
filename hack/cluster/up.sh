#!/usr/bin/env bash
# hack/cluster/up.sh starts a whole single-node Kubernetes cluster inside the caller's own network
# namespace and waits until the node is Ready and Services route:
#
#   control plane: etcd, kube-apiserver (serving on the pod bridge's host address, so pods reach it
#     through the kubernetes Service), kube-controller-manager, kube-scheduler
#   node: containerd + kubelet as PID 1's children of private PID and mount namespaces (node.sh),
#     kube-proxy (iptables mode; its rules are this namespace's own), a bridge CNI
#
# Inputs (environment): CG_CLUSTER_DIR (run dir, wiped), CLUSTER_BIN ($(hack/node.sh)), KUBE_ASSETS
# ($(hack/envtest.sh)), CG_CLUSTER_IMAGES (image tarballs to import; must include the sandbox image
# claude-guard.local/pause:test, internal/test/cluster.BuildImages). Prints the admin kubeconfig path. Needs root. down.sh undoes everything
# (up.sh runs it itself when it fails).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
T0=$(now)

[ "$(id -u)" = 0 ] || die "needs root (a node mounts, makes cgroups and runs containers)"
# Refuse to run in the machine's own network namespace: kube-proxy's rules, the bridge and the API
# server's listener must stay off it.
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
  die "run me inside a network namespace of my own (internal/test/cluster does: unshare --net)"
for b in kubelet kube-proxy kube-controller-manager kube-scheduler; do
  [ -x "$CLUSTER_BIN/$b" ] || die "missing $CLUSTER_BIN/$b: run hack/node.sh"
done
for b in etcd kube-apiserver kubectl; do [ -x "$KUBE_ASSETS/$b" ] || die "missing $KUBE_ASSETS/$b: run hack/envtest.sh"; done
for b in containerd containerd-shim-runc-v2 runc ctr iptables openssl; do
  command -v "$b" >/dev/null || die "missing $b: hack/node.sh installs containerd, runc, iptables and the CNI plugins"
done
CNI_BIN=/usr/lib/cni
for p in bridge host-local loopback; do [ -x "$CNI_BIN/$p" ] || die "missing $CNI_BIN/$p: hack/node.sh installs containernetworking-plugins"; done
[ ! -f "$RUN/pids" ] || die "$RUN/pids exists: run down.sh first"
if grep -q " $RUN" /proc/self/mountinfo; then die "something is mounted under $RUN"; fi
KUBECTL="$KUBE_ASSETS/kubectl"

rm -rf "$RUN"
mkdir -p "$RUN"/{etc,pki,logs,cni/net.d,cni/ipam,manifests}
: >"$RUN/pids"
trap 'rc=$?; if [ $rc != 0 ]; then log "up.sh failed ($rc); running down.sh"; "$HERE/down.sh" || true; fi' EXIT
start() { # NAME CMD... : start a service detached, log to logs/NAME.log, record its PID
  local name=$1; shift
  setsid "$@" >"$RUN/logs/$name.log" 2>&1 </dev/null &
  echo "$name $!" >>"$RUN/pids"
}
wait_for() { # WHAT TRIES CMD... : retry CMD every 0.2 s
  local what=$1 tries=$2; shift 2
  for ((i = 0; i < tries; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up (logs in $RUN/logs)"
}

# ---------------------------------------------------------------- network: the namespace's own
ip link set lo up
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Pods reach Services through this namespace (kube-proxy DNATs here); it has no other interface, so
# nothing is routed off the machine. The API server dials webhook Services at their cluster IPs from
# here too: a route makes the kernel accept those connections before kube-proxy's rules rewrite them.
echo 1 >/proc/sys/net/ipv4/ip_forward
ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"

# ---------------------------------------------------------------- PKI (openssl): one CA for everything
pki="$RUN/pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=claude-guard-test-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
cat >"$pki/apiserver.ext" <<EXT
subjectAltName = IP:$NODE_IP, IP:127.0.0.1, IP:$API_SERVICE_IP, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage = serverAuth
EXT
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
  -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
TOKEN=$(openssl rand -hex 16)
echo "$TOKEN,cluster-admin,cluster-admin,system:masters" >"$RUN/etc/tokens.csv"
kubeconfig() { # SERVER FILE
  cat >"$2" <<KC
apiVersion: v1
kind: Config
clusters:
- name: claude-guard-test
  cluster:
    server: $1
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: claude-guard-test
  context: {cluster: claude-guard-test, user: admin}
current-context: claude-guard-test
KC
}
ADMIN="$RUN/etc/admin.kubeconfig"
kubeconfig "https://$NODE_IP:$API_PORT" "$ADMIN"

# ---------------------------------------------------------------- control plane
start etcd "$KUBE_ASSETS/etcd" --data-dir="$RUN/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster="default=http://127.0.0.1:$((ETCD_PORT + 1))" --unsafe-no-fsync
start kube-apiserver "$KUBE_ASSETS/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=0.0.0.0 --advertise-address="$NODE_IP" \
  --secure-port="$API_PORT" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" --token-auth-file="$RUN/etc/tokens.csv" \
  --authorization-mode=Node,RBAC --allow-privileged=true --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --kubelet-preferred-address-types=Hostname --profiling=false
curl_api() { curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $TOKEN" "https://$NODE_IP:$API_PORT$1"; }
wait_for kube-apiserver 300 curl_api /readyz
log "kube-apiserver ready after $(since "$T0")"

# Controllers a real cluster runs for what the tests use: Deployments, ReplicaSets, Jobs, DaemonSets, the
# node-lifecycle controller (lifts the not-ready taint), ServiceAccounts and kube-root-ca.crt, the garbage
# collector (owner references), namespace deletion, EndpointSlices (kube-proxy routes by them), PDBs.
KCM_CONTROLLERS=job-controller,deployment-controller,replicaset-controller,daemonset-controller
KCM_CONTROLLERS+=,node-lifecycle-controller,serviceaccount-controller,root-ca-certificate-publisher-controller
KCM_CONTROLLERS+=,garbage-collector-controller,namespace-controller,endpointslice-controller,disruption-controller
start kube-controller-manager "$CLUSTER_BIN/kube-controller-manager" \
  --kubeconfig="$ADMIN" --leader-elect=false --secure-port=0 --controllers="${CG_KCM_CONTROLLERS:-$KCM_CONTROLLERS}" \
  --root-ca-file="$pki/ca.crt" --use-service-account-credentials=false
start kube-scheduler "$CLUSTER_BIN/kube-scheduler" --kubeconfig="$ADMIN" --leader-elect=false --secure-port=0

# ---------------------------------------------------------------- node: host side
for d in /sys/fs/cgroup/*/; do
  case "$d" in */unified/) continue ;; esac
  mkdir -p "$d${CGROUP_ROOT#/}"
done
# Paths containerd and the kubelet write to whatever their flags say, and the SPIRE agent's socket
# folder (a hostPath of config/spire); node.sh bind-mounts these run-dir folders over them inside its
# private mount namespace. Mount points that do not exist are made here and
# removed by down.sh.
cat >"$RUN/etc/binds" <<BINDS
/run/containerd $RUN/containerd-state
/var/lib/kubelet $RUN/kubelet
/var/lib/cni $RUN/cni/lib
/var/log/pods $RUN/logs/pods
/var/log/containers $RUN/logs/containers
/usr/libexec/kubernetes $RUN/libexec-kubernetes
/run/spire $RUN/spire
BINDS
: >"$RUN/created-mountpoints"
while read -r dst _; do
  [ -e "$dst" ] || { mkdir -p "$dst"; echo "$dst" >>"$RUN/created-mountpoints"; }
done <"$RUN/etc/binds"

# No default route and no masquerade in pods: their only routes are the pod subnet and the Service range
# through this namespace (kube-proxy DNATs Services here), which itself has no route off the machine.
cat >"$RUN/cni/net.d/10-claude-guard.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "claude-guard",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP", "rangeStart": "${POD_CIDR%.*}.10"}]],
        "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}],
        "dataDir": "$RUN/cni/ipam"
      }
    }
  ]
}
CNI

cat >"$RUN/etc/containerd.toml" <<TOML
version = 2
root = "$RUN/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$RUN/containerd.sock"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = true
  # No CAP_SYS_RESOURCE in this sandbox: runc cannot set the negative oom_score_adj the kubelet asks for.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$RUN/cni/net.d"
    max_conf_num = 1
TOML

cat >"$RUN/etc/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$RUN/containerd.sock
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
resolvConf: ""                  # no cluster DNS: pods get their own loopback as nameserver
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
serializeImagePulls: false
maxPods: 60
makeIPTablesUtilChains: false
staticPodPath: $RUN/manifests
YAML

# kube-proxy in this namespace: conntrack sysctls left alone (maxPerCore 0, timeouts 0), no localhost
# NodePorts (route_localnet stays 0), masquerade for hairpin traffic only.
cat >"$RUN/etc/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $ADMIN
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  masqueradeAll: false
nodePortAddresses: ["$NODE_IP/32"]
YAML

# ---------------------------------------------------------------- node: namespaces
T1=$(now)
start node unshare --pid --fork --mount-proc --propagation private \
  env RUN="$RUN" CLUSTER_BIN="$CLUSTER_BIN" NODE_NAME="$NODE_NAME" NODE_IP="$NODE_IP" \
  CG_CLUSTER_IMAGES="${CG_CLUSTER_IMAGES:-}" KUBELET_V="${CG_KUBELET_V:-1}" PATH="$PATH" bash "$HERE/node.sh"

node_ready() {
  [ "$("$KUBECTL" --kubeconfig "$ADMIN" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
for ((i = 0; ; i++)); do
  node_ready && break
  pid=$(awk '$1=="node"{print $2}' "$RUN/pids")
  if ! alive "$pid" || ((i > 600)); then
    tail -30 "$RUN/logs/node.log" "$RUN/logs/kubelet.log" >&2 || true
    die "node $NODE_NAME not Ready (logs in $RUN/logs)"
  fi
  sleep 0.2
done
log "node Ready $(since "$T1") after its start"
# kube-proxy has synced once the kubernetes Service's rules exist.
wait_for kube-proxy 300 curl -sf http://127.0.0.1:10256/healthz
wait_for "the kubernetes Service's rules" 300 bash -c "iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -q '$API_SERVICE_IP/32'"
log "cluster up in $(since "$T0")"
echo "$ADMIN"
