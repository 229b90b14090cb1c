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

phase "test servers: envtest control plane (kube-apiserver, etcd, kubectl)"
KUBEBUILDER_ASSETS=$(hack/envtest.sh)
export KUBEBUILDER_ASSETS
done_phase

phase "test servers: OpenBao (the test Vault) and SPIRE server/agent"
CLAUDE_GUARD_OPENBAO_DIR=$(hack/openbao.sh)
CLAUDE_GUARD_SPIRE_DIR=$(hack/spire.sh)
export CLAUDE_GUARD_OPENBAO_DIR CLAUDE_GUARD_SPIRE_DIR
done_phase

phase "generated files and formatting"
hack/verify.sh
done_phase

phase "go vet"
go vet ./...
done_phase

phase "golangci-lint"
go tool -modfile=hack/tools/lint/go.mod golangci-lint run ./...
done_phase

phase "go test"
# The sidecar's concurrency (limits under parallel load, hot reload) is checked with the race detector.
go test -count=1 -race ./sidecar/... ./internal/...
go test -count=1 $(go list ./... | grep -v -e /sidecar/ -e /internal/)
done_phase

printf '\n[test] whole suite passed in %ss\n' "$((SECONDS - T0))" >&2
