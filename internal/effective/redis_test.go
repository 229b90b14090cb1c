package effective

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// TestComputeRedisBackend: a policy asking for the Redis backend gets the operator's Redis URL, or counts
// locally when the operator has none (the chart's documented behaviour); the rendered config validates
// either way (a sidecar refuses backend Redis without a URL). With per-namespace users the config names
// the namespace's user and the URL (already stripped of credentials by the manager) is rendered as is,
// and the credential broker where the sidecar can authenticate to it.
func TestComputeRedisBackend(t *testing.T) {
	broker := &policyconfig.RedisBroker{URL: "https://broker.claude-guard-system.svc:9444", ID: "spiffe://" + opts.TrustDomain + "/ns/claude-guard-system/sa/claude-guard-manager"}
	for _, c := range []struct {
		name, redisURL, wantBackend, wantUser string
		users                                 bool
		broker                                *policyconfig.RedisBroker
		tenantTD                              string
		wantBroker                            bool
	}{
		{name: "operator has Redis, one shared user", redisURL: "rediss://limits:pw@redis.claude-guard-system:6380/0", wantBackend: policyconfig.BackendRedis},
		{name: "operator has Redis, per-namespace users", redisURL: "rediss://redis.claude-guard-system:6380/0", users: true,
			wantBackend: policyconfig.BackendRedis, wantUser: "cg-" + policy().Namespace},
		{name: "operator has no Redis", redisURL: "", wantBackend: policyconfig.BackendLocal},
		{name: "operator has no Redis, users flag on", redisURL: "", users: true, wantBackend: policyconfig.BackendLocal},
		{name: "a broker in the config's trust domain hands out the password", redisURL: "redis://r:6379", users: true, broker: broker,
			wantBackend: policyconfig.BackendRedis, wantUser: "cg-" + policy().Namespace, wantBroker: true},
		{name: "a tenant of another trust domain cannot reach the broker: the Secret stays", redisURL: "redis://r:6379", users: true, broker: broker,
			tenantTD: "elsewhere.example", wantBackend: policyconfig.BackendRedis, wantUser: "cg-" + policy().Namespace},
		{name: "no namespace users, no broker", redisURL: "redis://u:pw@r:6379", broker: broker, wantBackend: policyconfig.BackendRedis},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := policy(func(p *v1alpha1.ClaudeAccessPolicy) {
				p.Spec.Limits = &v1alpha1.LimitPolicy{Backend: "Redis", FailureMode: "FailOpen",
					Rules: []v1alpha1.RateLimit{{Name: "rpm", Window: "Minute", Requests: ptr.To[int64](60)}}}
			})
			o := opts
			o.RedisURL, o.RedisUsers, o.RedisBroker = c.redisURL, c.users, c.broker
			tn := tenant(func(t *v1alpha1.ClaudeTenant) { t.Spec.Limits = nil }) // TestTenantCeilings has those
			if c.tenantTD != "" {
				tn.Spec.SPIFFE = &v1alpha1.TenantSPIFFE{TrustDomain: c.tenantTD}
			}
			cfg, vs := Compute(Input{Policy: p, Tenant: tn}, o)
			if len(vs) != 0 {
				t.Fatalf("violations: %+v", vs)
			}
			if cfg.Limits.Backend != c.wantBackend || cfg.Limits.RedisURL != c.redisURL || cfg.Limits.FailureMode != "FailOpen" ||
				cfg.Limits.RedisUser != c.wantUser {
				t.Fatalf("limits = %+v, want backend %s with URL %q and user %q", cfg.Limits, c.wantBackend, c.redisURL, c.wantUser)
			}
			if got := cfg.Limits.RedisBroker; (got != nil) != c.wantBroker || (got != nil && *got != *broker) {
				t.Fatalf("limits.redisBroker = %+v, want it: %v", got, c.wantBroker)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("rendered config does not validate: %v", err)
			}
		})
	}
}

// TestTenantCeilingsCountOnTheTenantsBackend: a tenant's limits and budgets count in the operator's
// Redis with the tenant's failure mode, whatever backend and failure mode the policy asks for: a policy
// can neither move them to Local (per pod) nor make them FailOpen. Without a Redis such a policy is
// not admitted, and a tenant without ceilings leaves the policy's choice alone.
func TestTenantCeilingsCountOnTheTenantsBackend(t *testing.T) {
	local := func(mode v1alpha1.FailureMode) func(*v1alpha1.ClaudeAccessPolicy) {
		return func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Limits = &v1alpha1.LimitPolicy{Backend: v1alpha1.LimitBackendLocal, FailureMode: mode,
				Rules: []v1alpha1.RateLimit{{Name: "rpm", Window: "Minute", Requests: ptr.To[int64](60)}}}
		}
	}
	budgetOnly := func(mode v1alpha1.FailureMode) func(*v1alpha1.ClaudeTenant) {
		return func(t *v1alpha1.ClaudeTenant) {
			t.Spec.Limits = nil
			t.Spec.Budgets = []v1alpha1.Budget{{Name: "month", Key: v1alpha1.KeyNamespace, Window: "Month", Tokens: ptr.To[int64](1_000_000)}}
			t.Spec.LimitsFailureMode = mode
		}
	}
	noCeilings := func(t *v1alpha1.ClaudeTenant) { t.Spec.Limits = nil }
	for _, c := range []struct {
		name              string
		policy            func(*v1alpha1.ClaudeAccessPolicy)
		tenant            func(*v1alpha1.ClaudeTenant)
		redisURL          string
		wantBackend       string
		wantMode          string
		wantNoSharedStore bool
	}{
		{"a Local FailOpen policy under a tenant's limit: Redis, FailClosed", local(v1alpha1.FailOpen), func(*v1alpha1.ClaudeTenant) {},
			opts.RedisURL, policyconfig.BackendRedis, policyconfig.FailClosed, false},
		{"a policy without limits under a tenant's budget: Redis, FailClosed", func(*v1alpha1.ClaudeAccessPolicy) {}, budgetOnly(""),
			opts.RedisURL, policyconfig.BackendRedis, policyconfig.FailClosed, false},
		{"the tenant allows FailOpen and the policy has no limits: FailOpen", func(*v1alpha1.ClaudeAccessPolicy) {}, budgetOnly(v1alpha1.FailOpen),
			opts.RedisURL, policyconfig.BackendRedis, policyconfig.FailOpen, false},
		{"the tenant allows FailOpen, the policy wants FailClosed: FailClosed", local(v1alpha1.FailClosed), budgetOnly(v1alpha1.FailOpen),
			opts.RedisURL, policyconfig.BackendRedis, policyconfig.FailClosed, false},
		{"both FailOpen", local(v1alpha1.FailOpen), budgetOnly(v1alpha1.FailOpen),
			opts.RedisURL, policyconfig.BackendRedis, policyconfig.FailOpen, false},
		{"the tenant wants FailClosed, the policy FailOpen: FailClosed", local(v1alpha1.FailOpen), budgetOnly(v1alpha1.FailClosed),
			opts.RedisURL, policyconfig.BackendRedis, policyconfig.FailClosed, false},
		{"no Redis: not admitted", local(v1alpha1.FailOpen), func(*v1alpha1.ClaudeTenant) {}, "", "", "", true},
		{"a tenant without ceilings leaves Local alone", local(v1alpha1.FailOpen), noCeilings,
			opts.RedisURL, policyconfig.BackendLocal, policyconfig.FailOpen, false},
		{"a tenant without ceilings and no Redis: admitted, Local", local(v1alpha1.FailOpen), noCeilings,
			"", policyconfig.BackendLocal, policyconfig.FailOpen, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := opts
			o.RedisURL = c.redisURL
			tn := tenant(c.tenant)
			cfg, vs := Compute(Input{Policy: policy(c.policy), Tenant: tn}, o)
			if c.wantNoSharedStore {
				if len(vs) != 1 || vs[0].Reason != v1alpha1.ReasonNoSharedBackend ||
					!strings.Contains(vs[0].Message, "ClaudeTenant "+tn.Name+" sets limits or budgets, which count in the operator's shared Redis, and the operator has none") {
					t.Fatalf("violations %+v, want one NoSharedBackend naming the tenant", vs)
				}
				return
			}
			if len(vs) != 0 {
				t.Fatalf("violations: %+v", vs)
			}
			if cfg.Limits.Backend != c.wantBackend || cfg.Limits.FailureMode != c.wantMode {
				t.Fatalf("limits backend %s, failureMode %s; want %s, %s", cfg.Limits.Backend, cfg.Limits.FailureMode, c.wantBackend, c.wantMode)
			}
			if c.wantBackend == policyconfig.BackendRedis && cfg.Limits.RedisURL != c.redisURL {
				t.Fatalf("redisURL %q, want %q", cfg.Limits.RedisURL, c.redisURL)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("rendered config does not validate: %v", err)
			}
		})
	}
}
