#!/usr/bin/env bash
# hack/otelcol.sh builds the OpenTelemetry Collector the telemetry tests send the sidecar's OTLP to, from
# the Go module proxy through the wrapper module in hack/otelcol (the upstream collector's own OTLP
# receiver, batch processor and OTLP/HTTP and debug exporters), caches it outside the repo keyed by
# version, and prints the directory holding `otelcol`.
#
#   CLAUDE_GUARD_OTELCOL_DIR=$(hack/otelcol.sh)
#
# To move to another release: change OTELCOL_VERSION and the collector modules in hack/otelcol/go.mod
# together (every go.opentelemetry.io/collector module at one release), then `go mod tidy` there.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OTELCOL_VERSION="0.165.0"
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/otelcol" && pwd)"
OUT="$CG_CACHE/otelcol/v$OTELCOL_VERSION"

command -v go >/dev/null || die "go is required"
with_lock "$OUT" go_build_cached "the OpenTelemetry Collector $OTELCOL_VERSION" "$OUT" otelcol "$MODULE_DIR" \
  -ldflags="-s -w -X main.version=$OTELCOL_VERSION" .
echo "$OUT"
