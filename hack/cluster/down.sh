#!/usr/bin/env bash
# hack/cluster/down.sh stops what up.sh started, by the PIDs it recorded, and removes what it left on the
# machine: the cgroups below CGROUP_ROOT, the mount points it had to create, and the run directory. The
# bridge and kube-proxy's rules belong to the cluster's network namespace and vanish with it.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
set +e

wait_gone() { # PID SECONDS
  local i
  for ((i = 0; i < $2 * 20; i++)); do alive "$1" || return 0; sleep 0.05; done
  return 1
}

if [ -f "$RUN/pids" ]; then
  # The node first: its recorded PID is unshare, whose child is node.sh (PID 1 of the node's namespaces).
  # SIGTERM stops the kubelet and containerd; its exit kills every container. SIGKILL if it hangs.
  while read -r name pid; do
    [ "$name" = node ] || continue
    alive "$pid" || continue
    child=$(awk '{print $1}' "/proc/$pid/task/$pid/children" 2>/dev/null)
    if [ -n "$child" ]; then
      kill -TERM "$child" 2>/dev/null
      wait_gone "$pid" 30 || { log "node did not stop; SIGKILL"; kill -KILL "$child" 2>/dev/null; }
    fi
    wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
  done <"$RUN/pids"
  # Then the control plane, etcd last (an API server whose etcd is gone takes long to exit).
  for phase in clients etcd; do
    others=()
    while read -r name pid; do
      case "$phase:$name" in clients:node | clients:etcd | etcd:node) continue ;; etcd:*) [ "$name" = etcd ] || continue ;; esac
      kill -TERM "$pid" 2>/dev/null && others+=("$pid")
    done <"$RUN/pids"
    for pid in "${others[@]}"; do wait_gone "$pid" 15 || kill -KILL "$pid" 2>/dev/null; done
  done
fi

# Pod cgroups are empty once their processes are gone; remove them leaf first (runc and the kubelet
# mirror the tree into the cgroup2 'unified' hierarchy of this hybrid setup too).
for d in /sys/fs/cgroup/*/; do
  root="$d${CGROUP_ROOT#/}"
  [ -d "$root" ] && find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -d "$root" ] && log "warning: could not remove $root"
done
if [ -f "$RUN/created-mountpoints" ]; then
  tac "$RUN/created-mountpoints" | while read -r d; do rmdir "$d" 2>/dev/null || log "warning: $d not empty; left"; done
fi
if grep -q " $RUN" /proc/self/mountinfo; then
  log "warning: mounts left under $RUN; not removing it"
  grep " $RUN" /proc/self/mountinfo >&2
else
  rm -rf "$RUN"
fi
exit 0
