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

# k8s_wrapper_module NAME VERSION makes the current directory a main module that builds commands of
# k8s.io/kubernetes@VERSION: `go install k8s.io/kubernetes/cmd/...@VERSION` fails because kubernetes'
# go.mod replaces its staging modules with ./staging, so this module requires kubernetes and replaces
# each of them with its published v0.x release instead (shared/recipes/envtest.md).
k8s_wrapper_module() {
  local name=$1 version=$2 staging="v0.${2#v1.}" gomod m
  [ -f go.mod ] || go mod init "$name" >/dev/null 2>&1
  go mod edit -go=1.26 -require="k8s.io/kubernetes@$version"
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -n "$gomod" ] || die "could not download k8s.io/kubernetes@$version"
  grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk '{print $1}' | while read -r m; do
    go mod edit -replace="$m=$m@$staging"
  done
  go mod tidy >/dev/null
}

# go_build_cached NAME OUT BIN MODULE_DIR GO_BUILD_ARGS... builds BIN into OUT (a cache directory keyed by
# version) from the wrapper module MODULE_DIR with the module proxy, unless it is there already, and logs
# how long it took. Call it under with_lock OUT.
go_build_cached() {
  local name=$1 out=$2 bin=$3 dir=$4; shift 4
  [ -x "$out/$bin" ] && return
  log "building $name (minutes on a cold build cache)"
  local t0=$SECONDS
  GOWORK=off GOFLAGS=-mod=readonly go build -C "$dir" -trimpath -buildvcs=false -o "$out/$bin.tmp" "$@"
  mv "$out/$bin.tmp" "$out/$bin"
  log "$name ready in $((SECONDS - t0))s: $out/$bin"
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

# apt_download PKG[=VERSION]... fetches .debs into the current directory without installing them,
# refreshing the package lists once if apt does not know the package (a fresh machine, or lists older
# than the pinned version).
apt_download() {
  apt-get download "$@" >/dev/null 2>download.log && return
  log "apt-get download $* failed; refreshing the package lists and retrying"
  apt-get update >/dev/null 2>&1 || log "apt-get update failed (not root?); retrying anyway"
  apt-get download "$@" >/dev/null 2>download.log || { cat download.log >&2; return 1; }
}

# missing_libs LIBDIR BIN prints the shared libraries BIN cannot find with LD_LIBRARY_PATH=LIBDIR.
missing_libs() {
  LD_LIBRARY_PATH="$1" ldd "$2" | awk '/not found/ { print $1 }'
}

# uninstalled_deps PKG prints the library packages PKG depends on that this machine does not have.
uninstalled_deps() {
  local p
  for p in $(apt-cache depends "$1" | awk '$1 == "Depends:" && $2 ~ /^lib/ { print $2 }'); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}
