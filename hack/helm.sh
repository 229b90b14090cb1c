#!/usr/bin/env bash
# hack/helm.sh builds the Helm CLI from its Go module (the tools module hack/tools/helm pins the version),
# caches it outside the repo keyed by version, and prints its path.
#
#   HELM=$(hack/helm.sh)
#
# `go tool -modfile=hack/tools/helm/go.mod helm ...` runs the same pinned Helm; this script exists so that
# tests and the demo can exec one binary (with its version stamped, so `helm version` tells the truth)
# without each paying go tool's link step. To move to another release: change HELM_VERSION and run
# `go get -tool helm.sh/helm/v3/cmd/helm@vX.Y.Z && go mod tidy` in hack/tools/helm.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION="v3.22.0"
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/tools/helm" && pwd)"
OUT="$CG_CACHE/helm/$HELM_VERSION"

build() {
  [ -x "$OUT/helm" ] && return
  grep -q "helm.sh/helm/v3 $HELM_VERSION" "$MODULE_DIR/go.mod" ||
    die "hack/tools/helm/go.mod does not pin helm.sh/helm/v3 $HELM_VERSION"
  log "building helm $HELM_VERSION (a few minutes on a cold build cache)"
  # Like Helm's own Makefile: the Kubernetes version `helm template` and `helm lint` assume is the one of
  # the client-go Helm is built with (without it, v1.20, which the chart's kubeVersion refuses).
  local t0=$SECONDS minor
  minor=$(sed -n 's|^\s*k8s.io/client-go v0\.\([0-9]*\)\..*|\1|p' "$MODULE_DIR/go.mod")
  [ -n "$minor" ] || die "hack/tools/helm/go.mod requires no k8s.io/client-go"
  local x=helm.sh/helm/v3
  GOWORK=off GOFLAGS=-mod=readonly go build -C "$MODULE_DIR" -trimpath -buildvcs=false \
    -ldflags="-s -w -X $x/internal/version.version=$HELM_VERSION -X $x/pkg/lint/rules.k8sVersionMajor=1 -X $x/pkg/lint/rules.k8sVersionMinor=$minor -X $x/pkg/chartutil.k8sVersionMajor=1 -X $x/pkg/chartutil.k8sVersionMinor=$minor" \
    -o "$OUT/helm.tmp" helm.sh/helm/v3/cmd/helm
  mv "$OUT/helm.tmp" "$OUT/helm"
  log "helm ready in $((SECONDS - t0))s: $OUT/helm"
}

command -v go >/dev/null || die "go is required"
with_lock "$OUT" build
echo "$OUT/helm"
