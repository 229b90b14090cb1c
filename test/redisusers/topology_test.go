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
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// TestClusterAndSentinelBackends runs the whole Redis path of a namespace on a Redis Cluster (3
// primaries with a replica each) and on a Sentinel deployment, each with a password-protected default
// user as the manager's admin: the manager (--redis-url redis+cluster:// or redis+sentinel://) loads the
// function library and creates the namespace's user; the policy's rendered config carries the URL
// without its password, topology and seeds kept; the sidecar's limiter, as the namespace's user, counts
// a request there; and the operator reads the namespace budget's spend back into the policy's status.
func TestClusterAndSentinelBackends(t *testing.T) {
	backends := []struct {
		name, scheme string
		start        func(t *testing.T) string
	}{
		{"Cluster", "redis+cluster://", func(t *testing.T) string {
			return testservers.StartRedisCluster(t, testservers.RedisClusterOptions{ReplicasPerPrimary: 1, Password: adminPassword}).URL
		}},
		{"Sentinel", "redis+sentinel://", func(t *testing.T) string {
			return testservers.StartRedisSentinel(t, testservers.RedisSentinelOptions{Password: adminPassword}).URL
		}},
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			adminURL := b.start(t)
			spendOnTopology(t, env, adminURL, b.scheme)
		})
	}
}

func spendOnTopology(t *testing.T, env *testenv.Env, adminURL, scheme string) {
	admin, err := redisacl.NewAdmin(adminURL, master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	counters, err := redisacl.NewCounters(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = counters.Close() })
	public, err := redisacl.PublicURL(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective: effective.Options{NoTenant: effective.NoTenantAllow, VaultAddress: "https://vault.test:8200",
			Upstream: "https://api.anthropic.test", RedisURL: public, RedisUsers: true, TrustDomain: "cluster.test"},
		RedisUsers: &controllers.RedisUsersOptions{Admin: admin, Resync: time.Second},
		Spend:      &controllers.SpendOptions{Counters: counters, Interval: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	k := env.Client
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "topology-"}}
	if err := k.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	p := redisPolicy(ns.Name, "chat", v1alpha1.LimitBackendRedis)
	p.Spec.Budgets = []v1alpha1.Budget{{Name: "daily", Key: v1alpha1.KeyNamespace, Window: "Day", Tokens: ptr.To[int64](100_000)}}
	if err := k.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	var cfg *policyconfig.Config
	wait.For(t, 30*time.Second, "the policy is admitted", func() error {
		if _, cfg = rendered(t, k, ns.Name, "chat"); cfg.Deny != nil {
			return fmt.Errorf("deny-all: %s", cfg.Deny.Reason)
		}
		return nil
	})
	if cfg.Limits.RedisURL != public || !strings.HasPrefix(public, scheme) || strings.Contains(public, adminPassword) {
		t.Fatalf("rendered Redis URL %q, want %q (the %s URL without the admin password)", cfg.Limits.RedisURL, public, scheme)
	}
	var l *limits.Redis
	wait.For(t, 30*time.Second, "the sidecar's limiter counts as the namespace's user", func() error {
		s := secret(t, k, ns.Name)
		if s == nil {
			return fmt.Errorf("no Redis Secret in %s yet", ns.Name)
		}
		l = limiter(t, cfg, passwordFile(t, s))
		res, err := l.Reserve(ctx, limits.Request{Keys: limits.Keys{Workload: "app", Namespace: ns.Name}, Model: "claude-haiku-4-5", InputTokens: 10, OutputTokens: 10})
		if err != nil {
			return err
		}
		return l.Settle(ctx, res, usage.Usage{InputTokens: 30_000, OutputTokens: 10_000})
	})
	wait.For(t, 30*time.Second, "the policy's status.spend shows the settled usage", func() error {
		var got v1alpha1.ClaudeAccessPolicy
		if err := k.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
			return err
		}
		if len(got.Status.Spend) != 1 || got.Status.Spend[0].Spent != "40000" || got.Status.Spend[0].Remaining != "60000" {
			return fmt.Errorf("status.spend = %+v, want 40000 spent, 60000 remaining", got.Status.Spend)
		}
		return nil
	})
}
