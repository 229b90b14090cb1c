#!/usr/bin/env bash
# hack/vault-tenant.sh sets up Vault (or OpenBao) so that isolation between tenants holds in Vault itself,
# not only in the claude-guard controller: each tenant gets a policy that can read only its own KV prefix,
# and auth roles that only that tenant's workloads can log in as.
#
#   VAULT_ADDR=https://vault:8200 VAULT_TOKEN=... hack/vault-tenant.sh \
#     --tenant team-a --prefix tenants/team-a --namespaces team-a,team-a-batch \
#     --trust-domain prod.example --bundle spire-bundle.pem [--mount secret] [--methods cert,jwt,kubernetes]
#
# It writes:
#   policy  claude-guard-<tenant>       read on <mount>/data/<prefix>/*  (nothing else)
#   cert    auth/cert/certs/<tenant>     X.509-SVIDs of spiffe://<td>/ns/<namespace>/sa/* (the SPIRE bundle)
#   jwt     auth/jwt/role/<tenant>       JWT-SVIDs (audience "vault") whose sub is such an ID
#   k8s     auth/kubernetes/role/<tenant> service accounts of those namespaces
# The role name is the tenant name: list it in the ClaudeTenant's spec.credentials.vault.roles.
# The auth methods must be enabled and (jwt, kubernetes) configured once per cluster; see docs/vault.md.
# VAULT_CLI names the client binary (vault or bao). Idempotent: re-running updates the objects.
set -euo pipefail

cli="${VAULT_CLI:-vault}"
mount=secret methods=cert,jwt,kubernetes tenant="" prefix="" namespaces="" td="" bundle="" audience=vault ttl=1h
while [ $# -gt 0 ]; do
  case "$1" in
    --tenant) tenant=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --namespaces) namespaces=$2; shift 2 ;;
    --trust-domain) td=$2; shift 2 ;;
    --bundle) bundle=$2; shift 2 ;;
    --mount) mount=$2; shift 2 ;;
    --methods) methods=$2; shift 2 ;;
    --audience) audience=$2; shift 2 ;;
    --ttl) ttl=$2; shift 2 ;;
    *) echo "vault-tenant: unknown argument $1" >&2; exit 2 ;;
  esac
done
for v in tenant prefix namespaces; do
  [ -n "${!v}" ] || { echo "vault-tenant: --$v is required" >&2; exit 2; }
done
case "$prefix" in
  /*|*..*|*//*) echo "vault-tenant: --prefix must be a clean relative path, got $prefix" >&2; exit 2 ;;
esac

policy="claude-guard-$tenant"
"$cli" policy write "$policy" - <<HCL >/dev/null
# Written by claude-guard hack/vault-tenant.sh: tenant $tenant may read its own API keys, nothing else.
path "$mount/data/$prefix/*" {
  capabilities = ["read"]
}
HCL
echo "policy $policy: read $mount/data/$prefix/*"

ids="" subs=""
IFS=, read -ra nss <<<"$namespaces"
for ns in "${nss[@]}"; do
  ids="${ids:+$ids,}spiffe://$td/ns/$ns/sa/*"
done

IFS=, read -ra ms <<<"$methods"
for m in "${ms[@]}"; do
  case "$m" in
    cert)
      [ -n "$td" ] && [ -f "$bundle" ] || { echo "vault-tenant: cert needs --trust-domain and --bundle" >&2; exit 2; }
      "$cli" write "auth/cert/certs/$tenant" certificate=@"$bundle" allowed_uri_sans="$ids" \
        token_policies="$policy" token_ttl="$ttl" >/dev/null
      echo "cert role $tenant: SVIDs $ids" ;;
    jwt)
      [ -n "$td" ] || { echo "vault-tenant: jwt needs --trust-domain" >&2; exit 2; }
      claims=$(printf '{"sub": [%s]}' "$(echo "$ids" | sed 's/[^,]*/"&"/g')")
      echo "{\"role_type\":\"jwt\",\"user_claim\":\"sub\",\"bound_audiences\":[\"$audience\"],\"bound_claims_type\":\"glob\",\"bound_claims\":$claims,\"token_policies\":[\"$policy\"],\"token_ttl\":\"$ttl\"}" |
        "$cli" write "auth/jwt/role/$tenant" - >/dev/null
      echo "jwt role $tenant: audience $audience, sub $ids" ;;
    kubernetes)
      "$cli" write "auth/kubernetes/role/$tenant" bound_service_account_names='*' \
        bound_service_account_namespaces="$namespaces" audience="$audience" token_policies="$policy" token_ttl="$ttl" >/dev/null
      echo "kubernetes role $tenant: service accounts of $namespaces" ;;
    *) echo "vault-tenant: unknown method $m" >&2; exit 2 ;;
  esac
done
