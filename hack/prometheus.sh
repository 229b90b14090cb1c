#!/usr/bin/env bash
# hack/prometheus.sh builds the Prometheus server the telemetry tests scrape the sidecar with and push
# OTLP into (its OTLP receiver), from the Go module proxy through the wrapper module in hack/prometheus,
# caches it outside the repo keyed by version, and prints the directory holding `prometheus`.
#
#   CLAUDE_GUARD_PROMETHEUS_DIR=$(hack/prometheus.sh)
#
# Built with remove_all_sd: the tests use static targets, and leaving out the cloud service discoveries
# halves the build. Without builtinassets the web UI is not embedded; the HTTP API the tests use is.
# To move to another release: change PROMETHEUS_VERSION (3.N.M is module v0.3NN.M) and
# `go get github.com/prometheus/prometheus@v0.3NN.M && go mod tidy` in hack/prometheus.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROMETHEUS_VERSION="3.16.0"
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/prometheus" && pwd)"
OUT="$CG_CACHE/prometheus/v$PROMETHEUS_VERSION"

build() {
  [ -x "$OUT/prometheus" ] && return
  log "building Prometheus $PROMETHEUS_VERSION (several minutes on a cold build cache)"
  local t0=$SECONDS
  GOWORK=off GOFLAGS=-mod=readonly go build -C "$MODULE_DIR" -trimpath -buildvcs=false -tags remove_all_sd \
    -ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    -o "$OUT/prometheus.tmp" github.com/prometheus/prometheus/cmd/prometheus
  mv "$OUT/prometheus.tmp" "$OUT/prometheus"
  log "Prometheus ready in $((SECONDS - t0))s: $OUT/prometheus"
}

command -v go >/dev/null || die "go is required"
with_lock "$OUT" build
echo "$OUT"
