package effective

import (
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
			tn := tenant()
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
