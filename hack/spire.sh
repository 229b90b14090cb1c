#!/usr/bin/env bash
# hack/spire.sh builds SPIRE from the Go module proxy and prints the directory holding the binaries, cached
# outside the repo keyed by version:
#   spire-server, spire-agent         (hack/spire: SPIRE itself)
#   spire-controller-manager,         (hack/spire-k8s: what runs SPIRE on Kubernetes; a module of its own
#   spiffe-csi-driver                  because its spire-api-sdk is newer than the one SPIRE pins)
# Every binary is static (the server's sqlite is cgo, linked with -static and the pure-Go resolver and user
# lookup), so the same files run as local test servers and inside images with an empty base.
#
#   CLAUDE_GUARD_SPIRE_DIR=$(hack/spire.sh)
#
# SPIRE pulls k8s.io/* and controller-runtime versions of its own, so it lives in its own module and never
# in the operator's go.mod. To move to another release: change SPIRE_VERSION and run
# `go get -tool github.com/spiffe/spire/cmd/spire-{server,agent}@vX.Y.Z && go mod tidy` in hack/spire
# (and the same for the versions below in hack/spire-k8s; spiffe-csi's sum is not in sum.golang.org, so its
# first `go get` needs GONOSUMDB=github.com/spiffe/spiffe-csi, after which go.sum pins it).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SPIRE_VERSION="v1.13.3"
SCM_VERSION="v0.6.3"
CSI_VERSION="v0.2.6"
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$CG_CACHE/spire/$SPIRE_VERSION-scm-$SCM_VERSION-csi-$CSI_VERSION-static"
BINARIES=(spire-server spire-agent spire-controller-manager spiffe-csi-driver)

pinned() { grep -q "$1 $2" "$HACK/$3/go.mod" || die "hack/$3/go.mod does not pin $1 $2"; }

build() {
  local b missing=0
  for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || missing=1; done
  [ $missing = 0 ] && return
  pinned github.com/spiffe/spire "$SPIRE_VERSION" spire
  pinned github.com/spiffe/spire-controller-manager "$SCM_VERSION" spire-k8s
  pinned github.com/spiffe/spiffe-csi "$CSI_VERSION" spire-k8s
  command -v gcc >/dev/null || die "gcc is required (SPIRE's sqlite datastore uses cgo)"
  [ -n "$(gcc -print-file-name=libc.a | grep /)" ] || die "libc.a is required for a static spire-server (apt-get install libc6-dev)"
  log "building SPIRE $SPIRE_VERSION, spire-controller-manager $SCM_VERSION, spiffe-csi $CSI_VERSION (several minutes on a cold build cache)"
  local t0=$SECONDS tmp="$OUT/tmp"
  mkdir -p "$tmp"
  export GOWORK=off GOFLAGS=-mod=readonly
  CGO_ENABLED=1 go build -C "$HACK/spire" -trimpath -buildvcs=false -tags netgo,osusergo \
    -ldflags="-s -w -linkmode=external -extldflags=-static -X github.com/spiffe/spire/pkg/common/version.gittag=${SPIRE_VERSION#v}" \
    -o "$tmp/" github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent 2>"$tmp/build.log" ||
    { cat "$tmp/build.log" >&2; die "building SPIRE failed"; } # (on success the log holds only ld's warnings about dlopen in a static binary)
  CGO_ENABLED=0 go build -C "$HACK/spire-k8s" -trimpath -buildvcs=false -ldflags="-s -w" \
    -o "$tmp/spire-controller-manager" github.com/spiffe/spire-controller-manager/cmd
  CGO_ENABLED=0 go build -C "$HACK/spire-k8s" -trimpath -buildvcs=false -ldflags="-s -w" \
    -o "$tmp/" github.com/spiffe/spiffe-csi/cmd/spiffe-csi-driver
  for b in "${BINARIES[@]}"; do mv "$tmp/$b" "$OUT/"; done
  rm -rf "$tmp"
  log "SPIRE ready in $((SECONDS - t0))s: $OUT"
}

# crds copies the SPIRE Controller Manager's CRDs (ClusterStaticEntry and friends) from its module, for
# the tests that install config/spire: they are its release's, so they are not kept in this repository.
crds() {
  [ -d "$OUT/crds" ] && return
  local dir
  dir=$(cd "$HACK/spire-k8s" && GOWORK=off GOFLAGS=-mod=readonly go mod download -json "github.com/spiffe/spire-controller-manager@$SCM_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$dir/config/crd/bases" ] || die "spire-controller-manager $SCM_VERSION has no config/crd/bases"
  mkdir -p "$OUT/crds.tmp"
  cp "$dir"/config/crd/bases/*.yaml "$OUT/crds.tmp/"
  chmod 0644 "$OUT"/crds.tmp/*.yaml
  mv "$OUT/crds.tmp" "$OUT/crds"
}

command -v go >/dev/null || die "go is required"
with_lock "$OUT" build
with_lock "$OUT" crds
echo "$OUT"
