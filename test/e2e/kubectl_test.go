//go:build integration

// Package e2e drives the operator the way people do: kubectl (the version matching the test control
// plane, built by hack/envtest.sh) against a real kube-apiserver, with the manager running.
package e2e

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/repo"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

var (
	cli *testenv.KubectlCLI
	env *testenv.Env
	// upstream is the fake Anthropic API the rendered configs point at; sidecarBin is cmd/sidecar, built.
	upstream   *httptest.Server
	fake       *fakeupstream.Server
	sidecarBin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	env, err = testenv.Start(testenv.WithWebhooks)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	dir, err := os.MkdirTemp("", "cg-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if cli, err = env.KubectlCLI(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fake = fakeupstream.New(upstreamKey)
	fake.Record = true
	upstream = httptest.NewServer(fake)
	defer upstream.Close()
	sidecarBin = filepath.Join(dir, "sidecar")
	if out, err := exec.Command("go", "build", "-o", sidecarBin, filepath.Join(testenv.RepoRoot(), "cmd", "sidecar")).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "failed to build the sidecar: %v\n%s", err, out)
		return 1
	}
	stop, err := env.StartManager(testenv.ManagerOptions{
		// A Redis URL, where the sample tenant's limits and budgets count: no sidecar of team-a runs here,
		// so none is dialled (test/redisusers and test/sharedlimits run real Redis).
		Effective: effective.Options{NoTenant: effective.NoTenantDeny, VaultAddress: "https://vault.test:8200", Upstream: upstream.URL,
			RedisURL: "redis://redis.claude-guard-system.test:6379/0"},
		Inject: &inject.Operator{Namespace: "claude-guard-system", Config: inject.DefaultConfig()},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = stop() }()
	return m.Run()
}

// kubectl runs the matching kubectl against the test API server.
func kubectl(args ...string) (string, error) { return cli.Run("", args...) }

func mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestSamplesApplyAndReportStatus(t *testing.T) {
	mustKubectl(t, "create", "namespace", "team-a")
	mustKubectl(t, "label", "namespace", "team-a", "claudeguard.io/tenant=team-a")

	samples, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "claudeguard_*.yaml"))
	if err != nil || len(samples) < 3 {
		t.Fatalf("expected at least 3 samples, got %v (%v)", samples, err)
	}
	for _, s := range samples {
		out := mustKubectl(t, "apply", "-f", s)
		if !strings.Contains(out, "created") && !strings.Contains(out, "configured") {
			t.Errorf("kubectl apply -f %s: %s", filepath.Base(s), out)
		}
	}

	// Every sample policy becomes Ready under the sample tenant.
	wait.For(t, 15*time.Second, "", func() error {
		out, err := kubectl("get", "cap", "-A")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		header := regexp.MustCompile(`(?m)^NAMESPACE\s+NAME\s+READY\s+MODELS\s+SPENT\s+REMAINING\s+PODS\s+AGE$`)
		if !header.MatchString(out) {
			return fmt.Errorf("unexpected columns:\n%s", out)
		}
		for _, row := range []string{
			`(?m)^team-a\s+chat\s+True\s+claude-haiku-\*\s+0\s+\S+$`,
			`(?m)^team-a\s+assistant-tiers\s+True\s+claude-haiku-\*,claude-sonnet-\*,claude-opus-\*\s+0\s+\S+$`,
			`(?m)^team-a\s+claude-code\s+True\s+claude-haiku-4-5\*,claude-sonnet-4-5\*,claude-opus-4-5\*\s+0\s+\S+$`,
		} {
			if !regexp.MustCompile(row).MatchString(out) {
				return fmt.Errorf("no row matching %s in:\n%s", row, out)
			}
		}
		return nil
	})
	wait.For(t, 15*time.Second, "", func() error {
		out, err := kubectl("get", "claudetenant", "team-a")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		if !regexp.MustCompile(`(?m)^team-a\s+True\s+1\s+3\s+\S+$`).MatchString(out) {
			return fmt.Errorf("unexpected tenant row:\n%s", out)
		}
		return nil
	})
	// docs/tenants.md's commands, as written, on the samples (its examples are team-a's chat policy).
	for _, block := range []string{"read-status", "skip-events"} {
		script, err := repo.DocBlock("docs/tenants.md", block)
		if err != nil {
			t.Fatal(err)
		}
		out, err := cli.Shell(script)
		if err != nil {
			t.Fatalf("docs/tenants.md block %s: %v\n%s", block, err, out)
		}
		if block == "read-status" && (!strings.Contains(out, "effective:") || !strings.Contains(out, "source: tenant")) {
			t.Errorf("docs/tenants.md block %s does not show status.effective with the tenant's ceiling:\n%s", block, out)
		}
	}
	out := mustKubectl(t, "get", "cap", "chat", "-n", "team-a", "-o", "wide")
	if !regexp.MustCompile(`READY\s+REASON\s+DEGRADED\s+MODELS\s+SPENT\s+REMAINING\s+BUDGET\s+PODS\s+INJECTED\s+TENANT\s+AGE`).MatchString(out) || !strings.Contains(out, "Admitted") {
		t.Errorf("wide output lacks the extra columns:\n%s", out)
	}
	out = mustKubectl(t, "get", "configmap", "claude-guard-chat", "-n", "team-a", "-o", "jsonpath={.data.config\\.json}")
	if !strings.Contains(out, `"path": "tenants/team-a/anthropic"`) {
		t.Errorf("rendered config lacks the tenant-confined Vault path:\n%s", out)
	}
}

func TestExplainDocumentsFields(t *testing.T) {
	out := mustKubectl(t, "explain", "cap.spec")
	for _, want := range []string{
		"podSelector\t<Object> -required-",
		"credentials\t<Object> -required-",
		"models\t<Object> -required-",
		"podSelector selects the pods in this namespace the policy applies to",
		"shadowMode\t<boolean>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain cap.spec lacks %q:\n%s", want, out)
		}
	}
	out = mustKubectl(t, "explain", "claudetenant.spec.credentials.vault.pathPrefix")
	if !strings.Contains(out, "KV path prefix every policy path is placed under") {
		t.Errorf("kubectl explain lacks pathPrefix docs:\n%s", out)
	}
}

func TestInvalidPolicyIsRejectedByKubectl(t *testing.T) {
	doc := `apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: bad, namespace: default}
spec:
  podSelector: {}
  credentials:
    vault: {authMethod: cert, role: team-a, path: ../team-b/anthropic}
  models: {allow: [claude-haiku-*]}
`
	f := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl("apply", "-f", f)
	if err == nil {
		t.Fatalf("invalid policy accepted:\n%s", out)
	}
	want := `spec.credentials.vault.path: Invalid value: "../team-b/anthropic": must be a relative path`
	if !strings.Contains(out, want) {
		t.Errorf("kubectl output lacks %q:\n%s", want, out)
	}
}

// TestTenantAdminRBACSampleAppliesAsIs: config/samples/tenant-admin-rbac.yaml applies as written, and
// binds exactly what its header promises: policies, their status and revocations in acme, nothing of ClaudeTenants,
// ConfigMaps or another namespace.
func TestTenantAdminRBACSampleAppliesAsIs(t *testing.T) {
	mustKubectl(t, "apply", "-f", filepath.Join(testenv.RepoRoot(), "config", "samples", "tenant-admin-rbac.yaml"))
	as := []string{"--as=alice", "--as-group=acme-admins"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "claudeaccesspolicies", "-n", "acme"}, "yes"},
		{[]string{"get", "claudeaccesspolicies/status", "-n", "acme"}, "yes"},
		{[]string{"list", "events", "-n", "acme"}, "yes"},
		{[]string{"create", "clauderevocations", "-n", "acme"}, "yes"},
		{[]string{"delete", "clauderevocations", "-n", "acme"}, "yes"},
		{[]string{"create", "clauderevocations", "-n", "team-a"}, "no"},
		{[]string{"get", "claudetenants"}, "no"},
		{[]string{"get", "configmaps", "-n", "acme"}, "no"},
		{[]string{"create", "claudeaccesspolicies", "-n", "team-a"}, "no"},
	} {
		out, _ := kubectl(append(append([]string{"auth", "can-i"}, c.args...), as...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n") // a warning may come first
		if got := lines[len(lines)-1]; got != c.want {
			t.Errorf("can-i %s: %q, want %s", strings.Join(c.args, " "), got, c.want)
		}
	}
}
