#!/usr/bin/env bash
# hack/bench.sh runs every benchmark and prints each figure next to its target (`make bench`).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(hack/envtest.sh)}"

printf '\n== sidecar proxy\n'
hack/bench-sidecar.sh

printf '\n== injection webhook admission latency\n'
go run ./test/admissionbench 2>&1 | grep -v '^I[0-9]'

printf '\n== Redis-backed limits (shared backend)\n'
export CLAUDE_GUARD_REDIS_DIR="${CLAUDE_GUARD_REDIS_DIR:-$(hack/redis.sh)}"
hack/bench-redis.sh
