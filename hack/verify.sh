#!/usr/bin/env bash
# hack/verify.sh fails when generated files (CRDs, chart RBAC, config/, deepcopy) are stale or Go code is not gofmt-clean.
# It regenerates into a scratch copy and compares, so it never touches the working tree.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail=0
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  log "gofmt would change:"; echo "$unformatted" >&2; fail=1
fi

scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
# Everything `make manifests` writes (CRDs, the chart's RBAC rules, config/ rendered from the chart),
# regenerated into copies of config/ and charts/ and compared with the working tree.
cp -r config charts "$scratch/"
hack/manifests.sh "$scratch" >/dev/null
for dir in config charts; do
  if ! diff -r "$dir" "$scratch/$dir" >/dev/null; then
    log "stale generated files in $dir/: run 'make manifests' (config/ is rendered from the chart: edit charts/claude-guard/templates, not config/)"
    diff -r "$dir" "$scratch/$dir" | head -20 >&2; fail=1
  fi
done
# deepcopy: controller-gen writes next to the types, so generate in a copy of the module.
mod="$scratch/mod"; mkdir -p "$mod"
git ls-files -z api go.mod go.sum hack/tools/go.mod hack/tools/go.sum | xargs -0 -I{} cp --parents {} "$mod"
(cd "$mod" && go tool -modfile=hack/tools/go.mod controller-gen object paths=./api/...)
if ! diff -q api/v1alpha1/zz_generated.deepcopy.go "$mod/api/v1alpha1/zz_generated.deepcopy.go" >/dev/null; then
  log "stale api/v1alpha1/zz_generated.deepcopy.go: run 'make generate'"; fail=1
fi
[ "$fail" = 0 ] && log "generated files and formatting are up to date"
exit "$fail"
