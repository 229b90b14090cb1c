//go:build integration

package isolation

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// The chart's ValidatingAdmissionPolicy (templates/admission/config-protection.yaml) as `helm install
// claude-guard -n claude-guard-system` creates it, and the manager's ServiceAccount it exempts.
const (
	releaseName       = "claude-guard"
	releaseNamespace  = "claude-guard-system"
	protectionTpl     = "templates/admission/config-protection.yaml"
	sidecarTpl        = "templates/admission/sidecar-protection.yaml"
	serviceAccountTpl = "templates/manager/serviceaccount.yaml"
)

// installConfigProtection applies the chart's config and sidecar protection to the test API server,
// waits until the API server enforces the first (the second is loaded with it), and returns the user the manager must run as: the chart's manager
// ServiceAccount (in the cluster-admin group, as this suite is about tenants; test/chart runs the manager
// with the chart's RBAC).
func installConfigProtection(dir string) (*envtest.User, error) {
	var err error
	if helm, err = chartenv.NewHelm(cli.Kubeconfig, filepath.Join(dir, "helm")); err != nil {
		return nil, err
	}
	for _, tpl := range []string{protectionTpl, sidecarTpl} {
		policy, err := render(tpl)
		if err != nil {
			return nil, err
		}
		if out, err := kubectl(policy, "apply", "-f", "-"); err != nil {
			return nil, fmt.Errorf("failed to apply %s: %w\n%s", tpl, err, out)
		}
	}
	saDoc, err := render(serviceAccountTpl)
	if err != nil {
		return nil, err
	}
	var sa corev1.ServiceAccount
	if err := yaml.Unmarshal([]byte(saDoc), &sa); err != nil {
		return nil, fmt.Errorf("failed to parse the manager's ServiceAccount from the chart: %w", err)
	}
	if sa.Name == "" || sa.Namespace == "" {
		return nil, fmt.Errorf("the chart renders no manager ServiceAccount:\n%s", saDoc)
	}
	// The API server loads admission policies asynchronously: wait until a labelled ConfigMap is refused.
	fake := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe, namespace: default, labels: {app.kubernetes.io/managed-by: claude-guard}}\n"
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := kubectl(fake, "create", "--dry-run=server", "-f", "-")
		if err != nil && strings.Contains(out, "ValidatingAdmissionPolicy") {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the API server does not enforce the config protection after 30s: %w\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return &envtest.User{
		Name:   "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
		Groups: []string{"system:masters", "system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"},
	}, nil
}

// helm renders the chart (set up by installConfigProtection).
var helm *chartenv.Helm

// render renders one template of the chart as `helm install claude-guard -n claude-guard-system` with
// values set would.
func render(tpl string, set ...string) (string, error) {
	args := []string{"template", releaseName, chartenv.Chart(), "--namespace", releaseNamespace, "--show-only", tpl}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return helm.Run(args...)
}

const (
	protectedMessage = "ConfigMap claude-guard-acme-chat is rendered by claude-guard from ClaudeAccessPolicy acme-chat; edit the policy instead"
	labelMessage     = "ConfigMaps named claude-guard-* or labelled app.kubernetes.io/managed-by=claude-guard are written only by claude-guard"
	secretMessage    = "Secrets named claude-guard-* or labelled app.kubernetes.io/managed-by=claude-guard are written only by claude-guard"
)

// TestNamespaceAdminCannotWriteRenderedConfigs: an admin of acme with Kubernetes' built-in "admin" role
// writes ConfigMaps as usual, but not the rendered sidecar config (edit, delete, relabel), nor a fake one;
// neither can a cluster admin. The API server's own error says to edit the policy instead.
func TestNamespaceAdminCannotWriteRenderedConfigs(t *testing.T) {
	ctx := context.Background()
	bindAdmin(t, "bob")
	// Without kube-controller-manager the built-in admin role has no rules yet.
	if err := env.AggregateClusterRole(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "bob may write ConfigMaps in acme (RBAC)", func() error {
		if out, _ := kubectl("", "auth", "can-i", "create", "configmaps", "-n", "acme", "--as", "bob"); strings.TrimSpace(out) != "yes" {
			return fmt.Errorf("kubectl auth can-i: %s; admin has %s", out, mustKubectl(t, "get", "clusterrole", "admin", "-o", "jsonpath={.rules}"))
		}
		return nil
	})
	wait.For(t, 30*time.Second, "acme-chat's rendered config", func() error {
		if jsonpath("acme", "configmap", "claude-guard-acme-chat", "{.metadata.name}") == "" {
			return errors.New("not rendered yet")
		}
		return nil
	})
	before := jsonpath("acme", "configmap", "claude-guard-acme-chat", "{.metadata.resourceVersion}")

	bob := []string{"--as", "bob"}
	fake := func(name string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: acme, labels: {app.kubernetes.io/managed-by: claude-guard, claudeguard.io/policy: acme-chat}}\ndata: {config.json: '{}'}\n", name)
	}
	cases := []struct {
		name  string
		as    []string
		args  []string
		stdin string
		// want is the refusal's text; "" means allowed.
		want string
	}{
		{"create an ordinary ConfigMap", bob, []string{"create", "configmap", "app-settings", "-n", "acme", "--from-literal=k=v"}, "", ""},
		{"edit an ordinary ConfigMap", bob, []string{"patch", "configmap", "app-settings", "-n", "acme", "-p", `{"data":{"k":"w"}}`}, "", ""},
		{"edit the rendered config", bob, []string{"patch", "configmap", "claude-guard-acme-chat", "-n", "acme", "-p", `{"data":{"config.json":"{}"}}`}, "", protectedMessage},
		{"replace the rendered config", bob, []string{"replace", "-f", "-"}, fake("claude-guard-acme-chat"), protectedMessage},
		{"remove its managed-by label", bob, []string{"label", "configmap", "claude-guard-acme-chat", "-n", "acme", "app.kubernetes.io/managed-by-"}, "", protectedMessage},
		{"delete the rendered config", bob, []string{"delete", "configmap", "claude-guard-acme-chat", "-n", "acme"}, "", protectedMessage},
		{"create a fake rendered config", bob, []string{"create", "-f", "-"}, fake("claude-guard-bobs"), "ConfigMap claude-guard-bobs is rendered by claude-guard from ClaudeAccessPolicy acme-chat"},
		{"label an ordinary ConfigMap as rendered", bob, []string{"label", "configmap", "app-settings", "-n", "acme", "app.kubernetes.io/managed-by=claude-guard"}, "", labelMessage},
		{"delete an ordinary ConfigMap", bob, []string{"delete", "configmap", "app-settings", "-n", "acme"}, "", ""},
		// Planted before a policy of that name exists: no label, or immutable, so neither the label rule
		// nor the controller's apply would catch it.
		{"plant an unlabelled config under a future policy's name", bob, []string{"create", "configmap", "claude-guard-future", "-n", "acme", "--from-literal=config.json={}"}, "", labelMessage},
		{"plant an immutable one", bob, []string{"create", "-f", "-"}, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: claude-guard-future, namespace: acme}\nimmutable: true\ndata: {config.json: '{}'}\n", labelMessage},
		{"plant the namespace's Redis password", bob, []string{"create", "secret", "generic", "claude-guard-redis", "-n", "acme", "--from-literal=password=known"}, "", secretMessage},
		{"create an ordinary Secret", bob, []string{"create", "secret", "generic", "anthropic-key", "-n", "acme", "--from-literal=api-key=x"}, "", ""},
		// Not RBAC: the same holds for a cluster admin.
		{"edit the rendered config as a cluster admin", nil, []string{"patch", "configmap", "claude-guard-acme-chat", "-n", "acme", "-p", `{"data":{"config.json":"{}"}}`}, "", protectedMessage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := kubectl(tc.stdin, append(append([]string{}, tc.args...), tc.as...)...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want allowed, got %v:\n%s", err, out)
			case tc.want != "" && (err == nil || !strings.Contains(out, tc.want)):
				t.Fatalf("want refused with %q, got %v:\n%s", tc.want, err, out)
			}
		})
	}

	// A delete-collection is judged object by object: the rendered config survives it.
	err := impersonating(t, "bob").DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace("acme"))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), protectedMessage) {
		t.Errorf("delete-collection of acme's ConfigMaps: want forbidden with %q, got %v", protectedMessage, err)
	}
	if after := jsonpath("acme", "configmap", "claude-guard-acme-chat", "{.metadata.resourceVersion}"); after != before {
		t.Errorf("the rendered config changed (resourceVersion %s -> %q)", before, after)
	}
}

// TestManagerAndKubernetesStillWriteRenderedConfigs: the manager (running as the chart's ServiceAccount)
// renders, updates and deletes configs; Kubernetes' garbage collector and namespace controller may delete
// them (the manager renders them again). This control plane runs no kube-controller-manager, so their
// deletions are made here with their identities; the garbage collector deleting a deleted policy's
// ConfigMap by its owner reference is not exercised (the manager's finalizer deletes it first anyway).
func TestManagerAndKubernetesStillWriteRenderedConfigs(t *testing.T) {
	mustApply(t, protectedPolicy(`["claude-haiku-*"]`))
	const cm = "claude-guard-protected"
	models := func() string { return jsonpath("acme", "configmap", cm, "{.data.config\\.json}") }
	wait.For(t, 30*time.Second, "the manager renders the policy (CREATE)", func() error {
		if !strings.Contains(models(), "claude-haiku-*") {
			return errors.New("not rendered yet")
		}
		return nil
	})
	mustApply(t, protectedPolicy(`["claude-haiku-4-5"]`))
	wait.For(t, 30*time.Second, "the manager renders the changed policy (UPDATE)", func() error {
		if m := models(); !strings.Contains(m, "claude-haiku-4-5") || strings.Contains(m, "claude-haiku-*") {
			return errors.New("not rendered yet")
		}
		return nil
	})
	for _, user := range []string{
		"system:serviceaccount:kube-system:generic-garbage-collector",
		"system:serviceaccount:kube-system:namespace-controller",
	} {
		uid := jsonpath("acme", "configmap", cm, "{.metadata.uid}")
		if out, err := kubectl("", "delete", "configmap", cm, "-n", "acme", "--as", user); err != nil {
			t.Fatalf("%s may delete a rendered config: %v\n%s", user, err, out)
		}
		wait.For(t, 30*time.Second, "the manager renders it again after "+user, func() error {
			if now := jsonpath("acme", "configmap", cm, "{.metadata.uid}"); now == "" || now == uid {
				return errors.New("not rendered again yet")
			}
			return nil
		})
	}
	mustKubectl(t, "delete", "cap", "protected", "-n", "acme")
	wait.For(t, 30*time.Second, "the manager deletes the config of a deleted policy (DELETE)", func() error {
		if out, err := kubectl("", "get", "configmap", cm, "-n", "acme"); err == nil || !strings.Contains(out, "NotFound") {
			return fmt.Errorf("still there: %w %s", err, out)
		}
		return nil
	})
}

func protectedPolicy(models string) string {
	return fmt.Sprintf(`
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: protected, namespace: acme}
spec:
  podSelector: {matchLabels: {app: protected}}
  credentials: {vault: {authMethod: kubernetes, role: acme-reader, path: anthropic}}
  models: {allow: %s}
`, models)
}

// impersonating returns a client of the test API server acting as user.
func impersonating(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
