package testenv

// Storefront returns the manifests of the "shop" tenant that `make demo` and test/e2e both run: a tenant
// without SPIFFE whose key (key) comes from a Secret mounted into the sidecar only, a policy for its
// storefront app, and, separately, the app's pod (apply it once the policy is Ready, as a real rollout
// would).
func Storefront(key string) (setup, pod string) {
	setup = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {claudeguard.io/tenant: shop}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeTenant
metadata: {name: shop}
spec:
  namespaceSelector: {matchLabels: {claudeguard.io/tenant: shop}}
  models: {allow: ["claude-haiku-*", "claude-sonnet-*"], maxTokens: 8192}
  credentials: {allowedSources: [SecretRef]}
---
apiVersion: v1
kind: Secret
metadata: {name: anthropic, namespace: shop}
stringData: {api-key: ` + key + `}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: storefront, namespace: shop}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: storefront, namespace: shop}
spec:
  podSelector: {matchLabels: {app: storefront}}
  credentials: {secretRef: {name: anthropic, key: api-key}}
  models:
    allow: ["claude-haiku-*"]
    maxTokens: [{model: "claude-haiku-*", limit: 1024, action: Clamp}]
`
	pod = `apiVersion: v1
kind: Pod
metadata:
  name: storefront
  namespace: shop
  labels: {app: storefront}
spec:
  serviceAccountName: storefront
  containers:
  - name: app
    image: example.com/storefront:1.0
`
	return setup, pod
}
