#!/usr/bin/env bash
# hack/spire.sh builds SPIRE's spire-server and spire-agent from the Go module proxy through the tools
# module in hack/spire, caches them outside the repo keyed by version, and prints the directory holding
# both binaries.
#
#   CLAUDE_GUARD_SPIRE_DIR=$(hack/spire.sh)
#
# SPIRE pulls k8s.io/* and controller-runtime versions of its own, so it lives in its own module and never
# in the operator's go.mod. To move to another release: change SPIRE_VERSION and run
# `go get -tool github.com/spiffe/spire/cmd/spire-{server,agent}@vX.Y.Z && go mod tidy` in hack/spire.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SPIRE_VERSION="v1.13.3"
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/spire" && pwd)"
OUT="$CG_CACHE/spire/$SPIRE_VERSION"

build() {
  [ -x "$OUT/spire-server" ] && [ -x "$OUT/spire-agent" ] && return
  grep -q "github.com/spiffe/spire $SPIRE_VERSION" "$MODULE_DIR/go.mod" ||
    die "hack/spire/go.mod does not pin github.com/spiffe/spire $SPIRE_VERSION"
  command -v gcc >/dev/null || die "gcc is required (SPIRE's sqlite datastore uses cgo)"
  log "building spire-server and spire-agent $SPIRE_VERSION (several minutes on a cold build cache)"
  local t0=$SECONDS tmp="$OUT/tmp"
  mkdir -p "$tmp"
  GOWORK=off GOFLAGS=-mod=readonly go build -C "$MODULE_DIR" -trimpath -buildvcs=false -ldflags="-s -w -X github.com/spiffe/spire/pkg/common/version.gittag=${SPIRE_VERSION#v}" \
    -o "$tmp/" github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent
  mv "$tmp/spire-server" "$tmp/spire-agent" "$OUT/"
  rmdir "$tmp"
  log "SPIRE ready in $((SECONDS - t0))s: $OUT"
}

command -v go >/dev/null || die "go is required"
with_lock "$OUT" build
echo "$OUT"
