//go:build integration

package spiffe

import (
	"fmt"

	"github.com/claude-guard/claude-guard/internal/test/cluster"
)

// Two tenants, each with its own key in OpenBao; the fake API accepts both and logs which one it got.
const (
	shop, other   = "shop", "other"
	shopKey       = "sk-ant-spiffe-shop-not-real"
	otherKey      = "sk-ant-spiffe-other-not-real"
	releaseNS     = "claude-guard-system"
	allowed       = "claude-haiku-4-5"
	vaultKeyPath  = "anthropic"
	vaultKVMount  = "secret"
	shopPrefix    = "tenants/" + shop
	otherPrefix   = "tenants/" + other
	workloadName  = "chat"
	forgedPodName = "forged"
)

var fakeUpstream = cluster.FakeUpstream("api", shop+"="+shopKey+","+other+"="+otherKey)

// tenant is namespace ns opted in to injection, its ClaudeTenant (SPIFFE trust domain of config/spire,
// keys from OpenBao under its own prefix, its own cert-auth role), a ServiceAccount and a policy whose
// sidecars log in with their X.509-SVID.
func tenant(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
  labels: {claudeguard.io/tenant: %[1]s, claudeguard.io/inject: enabled}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeTenant
metadata: {name: %[1]s}
spec:
  namespaceSelector: {matchLabels: {claudeguard.io/tenant: %[1]s}}
  models: {allow: ["claude-haiku-*"], maxTokens: 4096}
  spiffe: {trustDomain: %[2]s}
  credentials:
    allowedSources: [Vault]
    vault: {pathPrefix: tenants/%[1]s, mount: %[3]s, roles: [%[1]s]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: %[4]s, namespace: %[1]s}
`, ns, cluster.SPIRETrustDomain, vaultKVMount, workloadName) + policy(ns)
}

// policy is tenant ns's policy: the key at <prefix>/anthropic, read with cert auth as role ns.
func policy(ns string) string {
	return fmt.Sprintf(`---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  podSelector: {matchLabels: {app: %[2]s}}
  credentials: {vault: {authMethod: cert, role: %[1]s, path: %[3]s}}
  models: {allow: ["claude-haiku-*"]}
`, ns, workloadName, vaultKeyPath)
}

// workload is tenant ns's app: it calls Claude as it starts, so Available means a call was allowed.
func workload(ns string) string { return cluster.ClientDeployment(ns, workloadName, allowed) }

// thief is a policy and Deployment in the other tenant's namespace that ask for the shop's Vault role.
var thief = fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: thief, namespace: %[1]s}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: thief, namespace: %[1]s}
spec:
  podSelector: {matchLabels: {app: thief}}
  credentials: {vault: {authMethod: cert, role: %[2]s, path: %[3]s}}
  models: {allow: ["claude-haiku-*"]}
---
`, other, shop, vaultKeyPath) + cluster.ClientDeployment(other, "thief", allowed)
