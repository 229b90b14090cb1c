#!/usr/bin/env bash
# hack/test.sh runs the whole test suite, as README.md's `make test` and CI's .ci/run do:
#   1. builds (or reuses from the cache) every tool and test server,
#   2. checks generated files, formatting, go vet and golangci-lint,
#   3. runs every Go test package against the real servers.
# Each phase prints its wall time so slow steps are visible.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

phase() { printf '\n[test] == %s\n' "$*" >&2; PHASE_T0=$SECONDS; }
done_phase() { printf '[test] -- %ss\n' "$((SECONDS - PHASE_T0))" >&2; }
T0=$SECONDS

phase "tools and test servers: controller-gen, golangci-lint, helm, envtest control plane, the real node (kubelet, kube-proxy, controller manager, scheduler, containerd), OpenBao (the test Vault), SPIRE, Redis, Claude Code, an OpenTelemetry Collector, Prometheus"
# Built in parallel: on a fresh machine each spends minutes downloading modules, which overlaps with the
# others' compiling. Each is cached by version afterwards.
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
# Tests that measure something (test/pods) append `figure:` lines here; they are printed at the end.
export CLAUDE_GUARD_FIGURES="$out/figures"
for s in envtest node openbao spire helm redis claude-code otelcol prometheus; do
  (hack/$s.sh >"$out/$s" 2>"$out/$s.log"; echo $? >"$out/$s.rc") &
done
# The Go tools (controller-gen, golangci-lint) build in the same window; `go tool` caches them.
(go tool -modfile=hack/tools/go.mod controller-gen --version && go tool -modfile=hack/tools/lint/go.mod golangci-lint version) >/dev/null 2>"$out/tools.log" &
wait
for s in envtest node openbao spire helm redis claude-code otelcol prometheus; do
  if [ "$(cat "$out/$s.rc")" != 0 ]; then cat "$out/$s.log" >&2; die "hack/$s.sh failed"; fi
done
KUBEBUILDER_ASSETS=$(cat "$out/envtest")
CLAUDE_GUARD_OPENBAO_DIR=$(cat "$out/openbao")
CLAUDE_GUARD_SPIRE_DIR=$(cat "$out/spire")
CLAUDE_GUARD_HELM=$(cat "$out/helm")
CLAUDE_GUARD_REDIS_DIR=$(cat "$out/redis")
CLAUDE_GUARD_NODE_DIR=$(cat "$out/node")
CLAUDE_GUARD_CLAUDE_CODE_DIR=$(cat "$out/claude-code")
CLAUDE_GUARD_OTELCOL_DIR=$(cat "$out/otelcol")
CLAUDE_GUARD_PROMETHEUS_DIR=$(cat "$out/prometheus")
export CLAUDE_GUARD_OTELCOL_DIR CLAUDE_GUARD_PROMETHEUS_DIR CLAUDE_GUARD_CLAUDE_CODE_DIR CLAUDE_GUARD_NODE_DIR KUBEBUILDER_ASSETS CLAUDE_GUARD_OPENBAO_DIR CLAUDE_GUARD_SPIRE_DIR CLAUDE_GUARD_HELM CLAUDE_GUARD_REDIS_DIR
done_phase

phase "generated files and formatting"
hack/verify.sh
done_phase

phase "go vet"
go vet -tags integration ./...
done_phase

phase "golangci-lint and the Kube API Linter"
make lint
done_phase

phase "go test"
# test/chart lints the chart (helm lint --strict) and checks its renderings, values validation and a real
# install; hack/chartgen checks the generator behind config/.
# The sidecar's concurrency (limits under parallel load, hot reload) is checked with the race detector.
# Tests that need a server (a control plane, the node, OpenBao, SPIRE, Redis) carry the integration build
# tag; `make test-unit` runs the rest.
go test -count=1 -race -tags integration ./sidecar/... ./internal/...
go test -count=1 -tags integration $(go list -tags integration ./... | grep -v -e /sidecar/ -e /internal/)
done_phase

phase "make demo (the README's main job, end to end)"
go run ./hack/demo -exit >"$out/demo.log" 2>&1 || { cat "$out/demo.log" >&2; die "make demo failed"; }
grep -q '"decision":"deny"' "$out/demo.log" || { cat "$out/demo.log" >&2; die "make demo did not show a denied call"; }
done_phase

[ -f "$CLAUDE_GUARD_FIGURES" ] && { printf '\n[test] figures measured by the tests:\n' >&2; cat "$CLAUDE_GUARD_FIGURES" >&2; }
printf '\n[test] whole suite passed in %ss\n' "$((SECONDS - T0))" >&2
