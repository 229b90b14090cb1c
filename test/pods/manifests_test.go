//go:build integration

package pods

import (
	"fmt"

	"github.com/claude-guard/claude-guard/internal/imagebuild"
	"github.com/claude-guard/claude-guard/internal/test/cluster"
)

const (
	// upstreamKey is the only key the fake API accepts: it reaches the sidecar only through the tenant's
	// Secret, never the app.
	upstreamKey = "sk-ant-pods-test-key-not-real"
	tenantNS    = "shop"
	releaseNS   = "claude-guard-system"
	allowed     = "claude-haiku-4-5"
	denied      = "claude-opus-4-1"
	// laterAllowed is allowed by the tenant, and by the policy once TestRealPods edits it.
	laterAllowed = "claude-sonnet-4-5"
)

// fakeUpstreams are two fake Anthropic APIs as pods behind Services: the chart's upstream, and the one
// an upgrade moves it to.
var fakeUpstreams = cluster.FakeUpstream("api", upstreamKey) + "---\n" + cluster.FakeUpstream("api2", upstreamKey)

// tenant is the shop tenant: a namespace opted in to injection (failure policy Fail: no pod there starts
// without the sidecar), its ClaudeTenant, the key in a Secret, and the storefront policy.
var tenant = fmt.Sprintf(`apiVersion: v1
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
  models: {allow: ["claude-haiku-*", "claude-sonnet-*"], maxTokens: 8192}
  credentials: {allowedSources: [SecretRef]}
---
apiVersion: v1
kind: Secret
metadata: {name: anthropic, namespace: %[1]s}
stringData: {api-key: %[2]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: storefront, namespace: %[1]s}
`, tenantNS, upstreamKey)

// policy is the storefront policy with the given allowed models.
func policy(allow string) string {
	return fmt.Sprintf(`apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: storefront, namespace: %s}
spec:
  podSelector: {matchLabels: {app: storefront}}
  credentials: {secretRef: {name: anthropic, key: api-key}}
  models:
    allow: [%s]
    maxTokens: [{model: "claude-*", limit: 1024, action: Clamp}]
`, tenantNS, allow)
}

// storefront is the tenant's app (cluster.ClientDeployment).
var storefront = cluster.ClientDeployment(tenantNS, "storefront", allowed)

// job makes one call and exits: with the native sidecar the Job still completes.
var job = fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata: {name: report, namespace: %s}
spec:
  backoffLimit: 0
  template:
    metadata: {labels: {app: storefront}}
    spec:
      serviceAccountName: storefront
      restartPolicy: Never
      containers:
      - name: app
        image: %s
        imagePullPolicy: Never
        args: [call, -model, %s]
`, tenantNS, cluster.ClientImage, allowed)

// noKey is a policy whose secretRef names a Secret that does not exist, and a Deployment it selects: its
// pod cannot mount the sidecar's Secret, and the policy's status says so.
var noKey = fmt.Sprintf(`apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: nokey, namespace: %[1]s}
spec:
  podSelector: {matchLabels: {app: nokey}}
  credentials: {secretRef: {name: absent, key: api-key}}
  models: {allow: ["claude-haiku-*"]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nokey, namespace: %[1]s}
---
`, tenantNS) + cluster.ClientDeployment(tenantNS, "nokey", allowed)

// peekNS holds the attacker's pod of the sidecarUndumpable step: another namespace, not injected.
const peekNS = "peek"

// peekPod shares the node's PID namespace and runs as the images' user, the sidecar's.
var peekPod = fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Pod
metadata: {name: peek, namespace: %[1]s}
spec:
  hostPID: true
  containers:
  - name: peek
    image: %[2]s
    imagePullPolicy: Never
    args: [serve]
    securityContext: {runAsUser: %[3]d, runAsGroup: %[3]d, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`, peekNS, cluster.ClientImage, imagebuild.NonRoot)
