#!/usr/bin/env bash
# Shared helpers for the hack/ scripts. Source it; do not run it.
#
# Every tool and test server is built from the Go module proxy (or installed from Debian) into a cache
# outside the repository, keyed by version, so a second run costs seconds and a fresh clone needs nothing
# installed by hand.

set -euo pipefail

CG_CACHE="${CLAUDE_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/claude-guard}"
export CG_CACHE

log() { printf '[hack] %s\n' "$*" >&2; }
die() { printf '[hack] error: %s\n' "$*" >&2; exit 1; }

# build_flags_k8s VERSION prints the -ldflags that make Kubernetes binaries report VERSION.
build_flags_k8s() {
  local v="$1" major minor
  major="${v#v}"; major="${major%%.*}"
  minor="${v#v*.}"; minor="${minor%%.*}"
  printf -- '-s -w -X k8s.io/component-base/version.gitVersion=%s -X k8s.io/component-base/version.gitMajor=%s -X k8s.io/component-base/version.gitMinor=%s' "$v" "$major" "$minor"
}

# with_lock DIR CMD... runs CMD while holding an exclusive lock on DIR, so parallel test packages
# that all ask for the same tool build it once.
with_lock() {
  local dir="$1"; shift
  mkdir -p "$dir"
  exec {lockfd}>"$dir/.lock"
  flock "$lockfd"
  "$@"
  flock -u "$lockfd"
}
