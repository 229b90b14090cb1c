#!/usr/bin/env bash
# hack/manifests.sh regenerates every generated manifest (`make manifests`):
#
#   Go types          --controller-gen-->  config/crd/bases, copied to charts/claude-guard/crds
#   rbac markers      --controller-gen-->  (scratch) --hack/chartgen rbac-->  chart templates/_rbac.gen.tpl
#   chart templates   --helm template -->  --hack/chartgen kustomize-->      config/{rbac,manager,webhook,metrics,default}
#
# The chart is the one source of the deployable objects; config/ is its rendering with default values
# (docs/chart.md says why). With a directory argument it writes into that directory's copies of config/
# and charts/ instead of the working tree (hack/verify.sh diffs the result).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="${1:-.}"
controller_gen=(go tool -modfile=hack/tools/go.mod controller-gen)
helm=$(hack/helm.sh)
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT

"${controller_gen[@]}" crd paths=./api/... output:crd:artifacts:config="$out/config/crd/bases"
rm -f "$out"/charts/claude-guard/crds/*.yaml
cp "$out"/config/crd/bases/*.yaml "$out/charts/claude-guard/crds/"
"${controller_gen[@]}" rbac:roleName=manager-role paths="./controllers/...;./internal/managerapp/..." output:rbac:artifacts:config="$scratch"
go run ./hack/chartgen rbac -role "$scratch/role.yaml" -rules hack/chartgen/rbac.yaml -out "$out/charts/claude-guard/templates/_rbac.gen.tpl"
go run ./hack/chartgen kustomize -helm "$helm" -chart "$out/charts/claude-guard" -out "$out/config"
