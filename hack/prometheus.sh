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

command -v go >/dev/null || die "go is required"
with_lock "$OUT" go_build_cached "Prometheus $PROMETHEUS_VERSION" "$OUT" prometheus "$MODULE_DIR" -tags remove_all_sd \
  -ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus
echo "$OUT"
