#!/usr/bin/env bash
# hack/cluster/node.sh runs the node (containerd, kube-proxy, kubelet) as PID 1 of private PID and mount
# namespaces, inside the cluster's network namespace. up.sh starts it as
#   unshare --pid --fork --mount-proc --propagation private bash node.sh
# so every mount the node makes (overlay rootfs, volumes, netns bind mounts) vanishes with it, and killing
# this PID 1 kills every container. SIGTERM stops it gracefully: kubelet, kube-proxy, then containerd.
set -euo pipefail
: "${RUN:?}" "${CLUSTER_BIN:?}" "${NODE_NAME:?}" "${NODE_IP:?}"
LOG="$RUN/logs"
SOCK="$RUN/containerd.sock"
log() { printf '[node %s] %s\n' "$(date +%T.%3N)" "$*" >&2; }

# Host paths written whatever the flags say (up.sh lists them): bind mounts of run-dir folders here.
while read -r dst src; do
  mkdir -p "$src"
  mount --bind "$src" "$dst"
done <"$RUN/etc/binds"
# CSI drivers mount into pods' volume folders from their own container (mountPropagation: Bidirectional),
# which needs the kubelet's folder to be a shared mount. It is shared only with this namespace's own
# mounts: the namespace was made with private propagation, so nothing reaches the machine.
mount --make-rshared /var/lib/kubelet
# iptables' lock file, so the machine's /run is not written to.
: >"$RUN/xtables.lock"
[ -e /run/xtables.lock ] && mount --bind "$RUN/xtables.lock" /run/xtables.lock
export XTABLES_LOCKFILE="$RUN/xtables.lock"

# The kubelet rewrites these sysctls machine-wide when they differ from what it wants: show it the values
# it wants, in this mount namespace only.
mkdir -p "$RUN/sysctl"
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%%=*} v=${kv#*=}
  [ -e "/proc/sys/$k" ] || continue
  if [ "$(cat "/proc/sys/$k")" != "$v" ]; then
    f="$RUN/sysctl/${k//\//_}"
    echo "$v" >"$f"
    mount --bind "$f" "/proc/sys/$k"
  fi
done

pids=()
stop() {
  trap - TERM INT
  log "stopping"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
  done
  exit 0
}
trap stop TERM INT

# Images come only from the tarballs imported below: a pull of anything else must not even resolve a
# registry's name, so every registry connection goes to a closed loopback port.
HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
  containerd --config "$RUN/etc/containerd.toml" >"$LOG/containerd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$SOCK" version >/dev/null || { log "containerd did not start"; tail -20 "$LOG/containerd.log" >&2; exit 1; }
for tar in ${CG_CLUSTER_IMAGES:-}; do
  ctr --address "$SOCK" -n k8s.io images import --all-platforms "$tar" >>"$LOG/images.log" 2>&1 ||
    { log "importing $tar failed"; cat "$LOG/images.log" >&2; exit 1; }
done
log "containerd up, images imported"

"$CLUSTER_BIN/kube-proxy" --config="$RUN/etc/kube-proxy.yaml" --v=1 >"$LOG/kube-proxy.log" 2>&1 &
pids+=($!)
"$CLUSTER_BIN/kubelet" --config="$RUN/etc/kubelet.yaml" --kubeconfig="$RUN/etc/admin.kubeconfig" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v="${KUBELET_V:-1}" >"$LOG/kubelet.log" 2>&1 &
pids+=($!)
echo ready >"$RUN/node.ready"
# Stop (and so end the namespace) as soon as one of them dies.
wait -n "${pids[@]}" || true
log "a node process exited; stopping the rest"
stop
