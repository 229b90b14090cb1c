//go:build integration

package redisusers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisacl"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// TestSpendShowsInStatus: what a sidecar's limiter charges to Namespace budgets in Redis shows in the
// policy's and the tenant's status.spend (tightest first) and in `kubectl get cap` and `kubectl get
// claudetenants`, read by the operator over its own connection. The keys are the sidecar's, so a
// change to one side's key layout fails this test.
func TestSpendShowsInStatus(t *testing.T) {
	srv, admin, public, env := startBackend(t)
	k := env.Client
	counters, err := redisacl.NewCounters(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = counters.Close() })
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective: effective.Options{NoTenant: effective.NoTenantDeny, VaultAddress: "https://vault.test:8200",
			Upstream: "https://api.anthropic.test", RedisURL: public, RedisUsers: true, TrustDomain: "cluster.test"},
		RedisUsers: &controllers.RedisUsersOptions{Admin: admin, Resync: time.Second},
		// Read every second (production: every 30 s), so the test does not wait for the interval.
		Spend: &controllers.SpendOptions{Counters: counters, Interval: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	ctx := context.Background()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "spend-", Labels: map[string]string{"tenant": "spenders"}}}
	if err := k.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	tenant := &v1alpha1.ClaudeTenant{ObjectMeta: metav1.ObjectMeta{Name: "spenders"}, Spec: v1alpha1.ClaudeTenantSpec{
		NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "spenders"}},
		Models:            v1alpha1.TenantModels{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
		Credentials:       v1alpha1.TenantCredentials{Vault: &v1alpha1.TenantVault{PathPrefix: "tenants/spenders", Roles: []string{"team"}}},
		Budgets:           []v1alpha1.Budget{{Name: "monthly", Key: v1alpha1.KeyNamespace, Window: "Month", USD: "1"}},
	}}
	if err := k.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	// The policy asks for Local counting: its tenant's budget moves it to the shared Redis (and the
	// operator gives the namespace its Redis user), or the tenant's monthly dollar would be per pod.
	p := redisPolicy(ns.Name, "chat", v1alpha1.LimitBackendLocal)
	p.Spec.Limits.FailureMode = v1alpha1.FailOpen
	p.Spec.Budgets = []v1alpha1.Budget{
		{Name: "daily", Key: v1alpha1.KeyNamespace, Window: "Day", Tokens: ptr.To[int64](100_000)},
		{Name: "per-app", Key: v1alpha1.KeyWorkload, Window: "Day", Tokens: ptr.To[int64](50_000)}, // one counter per caller: not shown
	}
	if err := k.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitForPassword(t, k, srv, ns.Name)
	var cfg *policyconfig.Config
	wait.For(t, 30*time.Second, "the policy is admitted", func() error {
		if _, cfg = rendered(t, k, ns.Name, "chat"); cfg.Deny != nil {
			return fmt.Errorf("deny-all: %s", cfg.Deny.Reason)
		}
		return nil
	})
	if cfg.Limits.Backend != policyconfig.BackendRedis || cfg.Limits.FailureMode != policyconfig.FailClosed {
		t.Fatalf("limits %s/%s under a tenant's budget, want Redis/FailClosed (the tenant's)", cfg.Limits.Backend, cfg.Limits.FailureMode)
	}

	// The sidecar's limiter spends 50,000 input and 40,000 output tokens of claude-haiku-4-5 ($1 and $5
	// per million: $0.25): 90% of the policy's daily tokens, 25% of the tenant's monthly dollar.
	l := limiter(t, cfg, passwordFile(t, secret(t, k, ns.Name)))
	res, err := l.Reserve(ctx, limits.Request{Keys: limits.Keys{Workload: "app", Namespace: ns.Name}, Model: "claude-haiku-4-5", InputTokens: 10, OutputTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, res, usage.Usage{InputTokens: 50_000, OutputTokens: 40_000}); err != nil {
		t.Fatal(err)
	}

	want := []struct{ budget, source, spent, remaining, limit string }{
		{"daily", "policy", "90000", "10000", "100000"},
		{"monthly", "tenant", "$0.25", "$0.75", "$1.00"},
	}
	wait.For(t, 30*time.Second, "the policy's status.spend shows the settled usage", func() error {
		var got v1alpha1.ClaudeAccessPolicy
		if err := k.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
			return err
		}
		if len(got.Status.Spend) != len(want) {
			return fmt.Errorf("status.spend = %+v", got.Status.Spend)
		}
		for i, w := range want {
			s := got.Status.Spend[i]
			if s.Budget != w.budget || s.Source != w.source || s.Spent != w.spent || s.Remaining != w.remaining || s.Limit != w.limit || s.Namespace != ns.Name {
				return fmt.Errorf("status.spend[%d] = %+v, want %+v", i, s, w)
			}
		}
		if s := got.Status.Spend[1]; !s.ResetsAt.After(time.Now()) || s.ResetsAt.Day() != 1 {
			return fmt.Errorf("the monthly budget resets at %v, want the 1st of next month", s.ResetsAt)
		}
		return nil
	})
	wait.For(t, 30*time.Second, "the tenant's status.spend shows the namespace", func() error {
		var got v1alpha1.ClaudeTenant
		if err := k.Get(ctx, client.ObjectKeyFromObject(tenant), &got); err != nil {
			return err
		}
		if len(got.Status.Spend) != 1 || got.Status.Spend[0].Namespace != ns.Name || got.Status.Spend[0].Spent != "$0.25" {
			return fmt.Errorf("status.spend = %+v", got.Status.Spend)
		}
		return nil
	})

	cli, err := env.KubectlCLI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ args, want []string }{
		{[]string{"get", "cap", "-n", ns.Name}, []string{"SPENT", "REMAINING", "90000", "10000"}},
		{[]string{"get", "claudetenants", "spenders", "-o", "wide"}, []string{"SPENT", "REMAINING", "$0.25", "$0.75", ns.Name}},
	} {
		out, err := cli.Run("", c.args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(c.args, " "), err, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("kubectl %s does not show %q:\n%s", strings.Join(c.args, " "), w, out)
			}
		}
		t.Logf("$ kubectl %s\n%s", strings.Join(c.args, " "), out)
	}
}
