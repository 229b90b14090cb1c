#!/usr/bin/env bash
# hack/openbao.sh builds the OpenBao server (`bao`), the Vault-API server the tests use, from the Go module
# proxy through the wrapper module in hack/openbao, caches it outside the repo keyed by version, and prints
# the directory holding `bao`.
#
#   CLAUDE_GUARD_OPENBAO_DIR=$(hack/openbao.sh)
#
# Why OpenBao: HashiCorp Vault's current source does not build from the module proxy (it needs an in-tree
# sdk) and is BUSL-licensed; OpenBao is the MPL-2.0 fork with the same HTTP API, and
# github.com/hashicorp/vault/api talks to it unchanged (shared/recipes/vault-spire.md).
#
# To move to another release: change OPENBAO_VERSION and the pseudo-version of that release's commit in
# hack/openbao/go.mod, then seed hack/openbao/go.sum from openbao's own go.sum and run `go mod tidy -e`
# there (docs/test-servers.md).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OPENBAO_VERSION="2.4.0"
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/openbao" && pwd)"
OUT="$CG_CACHE/openbao/v$OPENBAO_VERSION"

command -v go >/dev/null || die "go is required"
with_lock "$OUT" go_build_cached "OpenBao $OPENBAO_VERSION" "$OUT" bao "$MODULE_DIR" \
  -ldflags="-s -w -X github.com/openbao/openbao/version.fullVersion=$OPENBAO_VERSION" .
echo "$OUT"
