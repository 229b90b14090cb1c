#!/usr/bin/env bash
# hack/verify.sh fails when generated files (CRDs, RBAC, deepcopy) are stale or Go code is not gofmt-clean.
# It regenerates into a scratch copy and compares, so it never touches the working tree.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail=0
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  log "gofmt would change:"; echo "$unformatted" >&2; fail=1
fi

scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
tools=(go tool -modfile=hack/tools/go.mod controller-gen)
"${tools[@]}" crd paths=./api/... output:crd:artifacts:config="$scratch/crd"
"${tools[@]}" rbac:roleName=manager-role paths="./controllers/...;./internal/managerapp/..." output:rbac:artifacts:config="$scratch/rbac"
cp -r api "$scratch/api"
"${tools[@]}" object paths=./api/... output:object:artifacts:config="$scratch/api-out" >/dev/null 2>&1 || true
for pair in "config/crd/bases:$scratch/crd" "charts/claude-guard/crds:$scratch/crd" "config/rbac/role.yaml:$scratch/rbac/role.yaml"; do
  if ! diff -r "${pair%%:*}" "${pair#*:}" >/dev/null; then
    log "stale generated files in ${pair%%:*}: run 'make manifests'"; diff -r "${pair%%:*}" "${pair#*:}" | head -20 >&2; fail=1
  fi
done
# deepcopy: controller-gen writes next to the types, so generate in a copy of the module.
mod="$scratch/mod"; mkdir -p "$mod"
git ls-files -z api go.mod go.sum hack/tools | xargs -0 -I{} cp --parents {} "$mod"
(cd "$mod" && go tool -modfile=hack/tools/go.mod controller-gen object paths=./api/...)
if ! diff -q api/v1alpha1/zz_generated.deepcopy.go "$mod/api/v1alpha1/zz_generated.deepcopy.go" >/dev/null; then
  log "stale api/v1alpha1/zz_generated.deepcopy.go: run 'make generate'"; fail=1
fi
[ "$fail" = 0 ] && log "generated files and formatting are up to date"
exit "$fail"
