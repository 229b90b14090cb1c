//go:build integration

// Package isolation proves multi-tenant isolation against a real API server (envtest) with the
// controllers and the injection webhook running: two tenants, acme and globex, in their own namespaces
// with different credentials, models and limits. Tenant A's sidecar identity cannot read tenant B's key
// in a real Vault is proven by test/vault (TestTenantsAreIsolatedInVault); separate quotas with a shared
// Redis by test/sharedlimits.
package isolation

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

var (
	env *testenv.Env
	cli *testenv.KubectlCLI
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if env, err = testenv.Start(testenv.WithWebhooks); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	dir, err := os.MkdirTemp("", "cg-isolation-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if cli, err = env.KubectlCLI(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The chart's config protection, so the tenants' tests meet it; the manager runs as the identity it
	// exempts.
	managerUser, err := installConfigProtection(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stop, err := env.StartManager(testenv.ManagerOptions{
		User: managerUser,
		// A Redis URL, where the tenants' limits count (no sidecar runs here, so none is dialled).
		Effective: effective.Options{NoTenant: effective.NoTenantDeny, VaultAddress: "https://vault.test:8200", Upstream: "https://api.anthropic.test",
			RedisURL: "redis://redis.claude-guard-system.test:6379/0"},
		Inject: &inject.Operator{Namespace: "claude-guard-system", Config: inject.DefaultConfig()},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = stop() }()
	if out, err := kubectl(tenants, "apply", "-f", "-"); err != nil {
		fmt.Fprintf(os.Stderr, "failed to set up the tenants: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// tenants are two tenants whose every distinctive value (globex's prefix, role, models, limit names)
// must never show up anywhere in acme's namespace, and the reverse.
const tenants = `
apiVersion: v1
kind: Namespace
metadata: {name: claude-guard-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: acme, labels: {claudeguard.io/tenant: acme}}
---
apiVersion: v1
kind: Namespace
metadata: {name: globex, labels: {claudeguard.io/tenant: globex}}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeTenant
metadata: {name: acme}
spec:
  namespaceSelector: {matchLabels: {claudeguard.io/tenant: acme}}
  models: {allow: ["claude-haiku-*"], maxTokens: 4096}
  credentials:
    allowedSources: [Vault, SecretRef]
    vault: {pathPrefix: tenants/acme, mount: secret, roles: [acme-reader]}
  limits: [{name: acme-namespace-rpm, key: Namespace, window: Minute, requests: 100}]
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeTenant
metadata: {name: globex}
spec:
  namespaceSelector: {matchLabels: {claudeguard.io/tenant: globex}}
  models: {allow: ["claude-opus-*"], maxTokens: 64000}
  credentials:
    allowedSources: [Vault]
    vault: {pathPrefix: tenants/globex-private-prefix, mount: globex-kv, roles: [globex-reader]}
  limits: [{name: globex-secret-limit, key: Namespace, window: Minute, requests: 7}]
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: acme-chat, namespace: acme}
spec:
  podSelector: {}
  credentials: {vault: {authMethod: kubernetes, role: acme-reader, path: anthropic}}
  models: {allow: ["claude-haiku-*"]}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: globex-chat, namespace: globex}
spec:
  podSelector: {}
  credentials: {vault: {authMethod: kubernetes, role: globex-reader, mount: globex-kv, path: anthropic}}
  models: {allow: ["claude-opus-*"]}
`

// globexSecrets are strings only globex's objects contain.
var globexSecrets = []string{"globex", "tenants/globex-private-prefix", "globex-kv", "globex-reader", "claude-opus", "globex-secret-limit"}

// kubectl runs the matching kubectl against the test API server with stdin.
func kubectl(stdin string, args ...string) (string, error) { return cli.Run(stdin, args...) }

func mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl("", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// bindAdmin gives user Kubernetes' built-in "admin" role in acme, as a tenant's admins have it.
func bindAdmin(t *testing.T, user string) {
	t.Helper()
	mustApply(t, fmt.Sprintf(`
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: %s-admin, namespace: acme}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: %s}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
`, user, user))
}

func mustApply(t *testing.T, yaml string) {
	t.Helper()
	if out, err := kubectl(yaml, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// jsonpath reads one field of an object ("" when it or the object does not exist yet).
func jsonpath(ns, kind, name, path string) string {
	out, err := kubectl("", "get", kind, name, "-n", ns, "-o", "jsonpath="+path)
	if err != nil {
		return ""
	}
	return out
}

// readyStatus returns a policy's Ready condition.
func readyStatus(ns, policy string) (status, reason, message string) {
	const c = `{.status.conditions[?(@.type=="Ready")]`
	return jsonpath(ns, "cap", policy, c+".status}"), jsonpath(ns, "cap", policy, c+".reason}"), jsonpath(ns, "cap", policy, c+".message}")
}

func TestPoliciesNeverSelectPodsInAnotherNamespace(t *testing.T) {
	for _, p := range []string{"acme-chat", "globex-chat"} {
		ns := strings.TrimSuffix(p, "-chat")
		wait.For(t, 30*time.Second, p+" Ready", func() error {
			if s, r, m := readyStatus(ns, p); s != "True" {
				return fmt.Errorf("%s %s", r, m)
			}
			return nil
		})
	}
	// Same name, same labels, both namespaces; both policies select every pod of their namespace.
	for _, ns := range []string{"acme", "globex"} {
		mustApply(t, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: %s, labels: {app: chat}}
spec:
  serviceAccountName: chat
  containers: [{name: app, image: example.com/chat:1}]
`, ns))
	}
	for _, tc := range []struct{ ns, policy, other string }{{"acme", "acme-chat", "globex-chat"}, {"globex", "globex-chat", "acme-chat"}} {
		pod := mustKubectl(t, "get", "pod", "app", "-n", tc.ns, "-o", "json")
		if !strings.Contains(pod, `"claudeguard.io/policy": "`+tc.policy+`"`) {
			t.Errorf("pod %s/app was not injected by %s:\n%s", tc.ns, tc.policy, pod)
		}
		if strings.Contains(pod, tc.other) {
			t.Errorf("pod %s/app references %s of the other namespace", tc.ns, tc.other)
		}
		wait.For(t, 30*time.Second, tc.policy+" counts its pods", func() error {
			if n := jsonpath(tc.ns, "cap", tc.policy, "{.status.pods.selected}"); n != "1" {
				return fmt.Errorf("selectedPods = %q, want 1 (its own namespace's pod only)", n)
			}
			return nil
		})
	}
}

func TestCannotReferenceAnotherTenantsCredentials(t *testing.T) {
	cases := []struct {
		name, spec string
		// rejected: the API server refuses the object (message); else the controller refuses it in status.
		rejected string
		reason   string
		message  string
	}{
		{name: "another tenant's Vault role", spec: `credentials: {vault: {authMethod: kubernetes, role: globex-reader, path: anthropic}}`,
			reason: "CredentialsNotAllowed", message: `spec.credentials.vault.role "globex-reader" is not allowed by ClaudeTenant acme`},
		{name: "another tenant's Vault mount", spec: `credentials: {vault: {authMethod: kubernetes, role: acme-reader, mount: globex-kv, path: anthropic}}`,
			reason: "CredentialsNotAllowed", message: `spec.credentials.vault.mount "globex-kv" is not allowed by ClaudeTenant acme`},
		{name: "escaping the prefix into another tenant's", spec: `credentials: {vault: {authMethod: kubernetes, role: acme-reader, path: "../globex-private-prefix/anthropic"}}`,
			rejected: `spec.credentials.vault.path: Invalid value: "../globex-private-prefix/anthropic": must be a relative path of letters, digits, '_', '.' and '-' segments, with no leading '/', empty, '.' or '..' segments`},
		{name: "a Secret in another namespace", spec: `credentials: {secretRef: {name: anthropic, key: api-key, namespace: globex}}`,
			rejected: `unknown field "spec.credentials.secretRef.namespace"`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("steal-%d", i)
			out, err := kubectl(fmt.Sprintf(`
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: %s, namespace: acme}
spec:
  podSelector: {matchLabels: {app: %s}}
  %s
  models: {allow: ["claude-haiku-*"]}
`, name, name, tc.spec), "apply", "-f", "-")
			if tc.rejected != "" {
				if err == nil || !strings.Contains(out, tc.rejected) {
					t.Fatalf("want the API server to refuse with %q, got %v:\n%s", tc.rejected, err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			wait.For(t, 30*time.Second, "refusal in status", func() error {
				if s, r, m := readyStatus("acme", name); s != "False" || r != tc.reason || !strings.Contains(m, tc.message) {
					return fmt.Errorf("Ready %s %s %q", s, r, m)
				}
				return nil
			})
			// The refused policy renders deny-all: pods it selects fail closed.
			cm := mustKubectl(t, "get", "configmap", "claude-guard-"+name, "-n", "acme", "-o", "jsonpath={.data}")
			if !strings.Contains(cm, "deny") {
				t.Fatalf("the refused policy's config is not deny-all: %s", cm)
			}
		})
	}
}

func TestNothingOfAnotherTenantShowsInANamespace(t *testing.T) {
	// A fresh namespace of acme's (the other tests write globex's names into acme on purpose). Provoke
	// everything that writes status or events there: an admitted policy, one exceeding the tenant, an
	// injected pod, a skipped pod.
	mustApply(t, `
apiVersion: v1
kind: Namespace
metadata: {name: acme-prod, labels: {claudeguard.io/tenant: acme}}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: chat, namespace: acme-prod}
spec:
  podSelector: {matchLabels: {app: chat}}
  credentials: {vault: {authMethod: kubernetes, role: acme-reader, path: anthropic}}
  models: {allow: ["claude-haiku-*"]}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: too-wide, namespace: acme-prod}
spec:
  podSelector: {matchLabels: {app: wide}}
  credentials: {vault: {authMethod: kubernetes, role: acme-reader, path: anthropic}}
  models: {allow: ["claude-opus-4-1"], maxTokens: [{model: "*", limit: 64000}]}
---
apiVersion: v1
kind: Pod
metadata: {name: host-net, namespace: acme-prod, labels: {app: chat}}
spec:
  hostNetwork: true
  containers: [{name: app, image: example.com/chat:1}]
`)
	wait.For(t, 30*time.Second, "too-wide refused", func() error {
		if s, r, _ := readyStatus("acme-prod", "too-wide"); s != "False" || r != "ExceedsTenantCeiling" {
			return fmt.Errorf("Ready %s %s", s, r)
		}
		return nil
	})
	wait.For(t, 30*time.Second, "chat Ready", func() error {
		if s, r, m := readyStatus("acme-prod", "chat"); s != "True" {
			return fmt.Errorf("%s %s", r, m)
		}
		return nil
	})
	mustApply(t, `
apiVersion: v1
kind: Pod
metadata: {name: chat, namespace: acme-prod, labels: {app: chat}}
spec:
  serviceAccountName: chat
  containers: [{name: app, image: example.com/chat:1}]
`)
	// Everything a tenant admin of acme can read about acme (and more: ConfigMaps and pods too).
	var seen strings.Builder
	for _, kind := range []string{"claudeaccesspolicies", "events", "configmaps", "pods"} {
		seen.WriteString(mustKubectl(t, "get", kind, "-n", "acme-prod", "-o", "yaml"))
	}
	text := seen.String()
	for _, want := range []string{"ExceedsTenantCeiling", "InjectionSkipped", "acme-namespace-rpm", "tenants/acme/anthropic"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the check read nothing useful: %q is missing", want)
		}
	}
	// The policy names models it wants ("claude-opus-4-1"); that is acme's own text. Strip acme's own
	// spec before looking for globex's values.
	text = strings.ReplaceAll(text, "claude-opus-4-1", "")
	for _, s := range globexSecrets {
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("acme's namespace shows %q of tenant globex: …%s…", s, text[max(0, i-200):min(len(text), i+100)])
		}
	}
}

func TestTenantAdminRBAC(t *testing.T) {
	rbac, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "tenant-admin-rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, string(rbac))
	as := []string{"--as", "alice", "--as-group", "acme-admins"}
	policy := func(ns, name string) string {
		return fmt.Sprintf(`
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: %s, namespace: %s}
spec:
  podSelector: {matchLabels: {app: %s}}
  credentials: {vault: {authMethod: kubernetes, role: acme-reader, path: anthropic}}
  models: {allow: ["claude-haiku-*"]}
`, name, ns, name)
	}
	cases := []struct {
		name    string
		args    []string
		stdin   string
		allowed bool
	}{
		{"create a policy in acme", []string{"apply", "-f", "-"}, policy("acme", "by-alice"), true},
		{"edit a policy in acme", []string{"label", "cap", "by-alice", "-n", "acme", "team=chat"}, "", true},
		{"read a policy's status in acme", []string{"get", "cap", "acme-chat", "-n", "acme", "-o", "jsonpath={.status.conditions}"}, "", true},
		{"read events in acme", []string{"get", "events", "-n", "acme"}, "", true},
		{"delete a policy in acme", []string{"delete", "cap", "by-alice", "-n", "acme"}, "", true},
		{"create a policy in globex", []string{"apply", "-f", "-"}, policy("globex", "by-alice"), false},
		{"read globex's policies", []string{"get", "cap", "-n", "globex"}, "", false},
		{"read ClaudeTenants", []string{"get", "claudetenants"}, "", false},
		{"edit acme's ClaudeTenant", []string{"label", "claudetenant", "acme", "x=y"}, "", false},
		{"create a ClaudeTenant", []string{"apply", "-f", "-"}, "apiVersion: claudeguard.io/v1alpha1\nkind: ClaudeTenant\nmetadata: {name: alice}\nspec: {namespaceSelector: {matchLabels: {x: y}}, models: {allow: [\"*\"]}, credentials: {allowedSources: [SecretRef]}}\n", false},
		{"create the price table", []string{"apply", "-f", "-"}, "apiVersion: claudeguard.io/v1alpha1\nkind: ClaudePriceTable\nmetadata: {name: default}\nspec: {prices: [{model: \"claude-*\", input: \"0\", output: \"0\"}]}\n", false},
		{"read the price table", []string{"get", "claudepricetables"}, "", false},
		{"read the operator's namespace", []string{"get", "secrets", "-n", "claude-guard-system"}, "", false},
		{"create a policy in the operator's namespace", []string{"apply", "-f", "-"}, policy("claude-guard-system", "by-alice"), false},
		{"edit acme's rendered sidecar config", []string{"label", "configmap", "claude-guard-acme-chat", "-n", "acme", "x=y"}, "", false},
		{"write an ordinary ConfigMap in acme", []string{"create", "configmap", "alices", "-n", "acme"}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := kubectl(tc.stdin, append(append([]string{}, tc.args...), as...)...)
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("want allowed, got %v:\n%s", err, out)
			case !tc.allowed && (err == nil || !strings.Contains(out, "forbidden")):
				t.Fatalf("want forbidden, got %v:\n%s", err, out)
			}
		})
	}
}

// TestPolicyEditorRoleAggregatesIntoAdmin: with tenantRBAC.policyEditorRole.aggregateToAdmin the chart's
// role carries the label the built-in "admin" role aggregates, so a namespace admin may write policies
// without a RoleBinding of the policy editor role. The aggregation controller is not part of the test
// control plane; env.AggregateClusterRole plays it, following admin's own aggregationRule.
func TestPolicyEditorRoleAggregatesIntoAdmin(t *testing.T) {
	ctx := context.Background()
	bindAdmin(t, "carol")
	canCreate := func() string {
		out, _ := kubectl("", "auth", "can-i", "create", "claudeaccesspolicies.claudeguard.io", "-n", "acme", "--as", "carol")
		return strings.TrimSpace(out)
	}
	for _, tc := range []struct {
		aggregate string
		want      string
	}{{"false", "no"}, {"true", "yes"}, {"false", "no"}} {
		role, err := render("templates/rbac/policy-editor.yaml", "tenantRBAC.policyEditorRole.aggregateToAdmin="+tc.aggregate)
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, role)
		if err := env.AggregateClusterRole(ctx, "admin"); err != nil {
			t.Fatal(err)
		}
		wait.For(t, 30*time.Second, "aggregateToAdmin="+tc.aggregate+": may carol, admin of acme, create policies: "+tc.want, func() error {
			if got := canCreate(); got != tc.want {
				return fmt.Errorf("kubectl auth can-i says %q", got)
			}
			return nil
		})
	}
}
