package effective

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
)

// TestSPIFFERequired: a credential that needs a SPIFFE identity is not admitted where none applies,
// and the message names the field, the tenant and the fix; a trust domain from the tenant or the
// operator admits it, and credentials that need no identity never need one.
func TestSPIFFERequired(t *testing.T) {
	noTD := opts
	noTD.TrustDomain = ""
	jwt := func(p *v1alpha1.ClaudeAccessPolicy) { p.Spec.Credentials.Vault.AuthMethod = v1alpha1.VaultAuthJWT }
	k8s := func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Credentials.Vault.AuthMethod = v1alpha1.VaultAuthKubernetes
	}
	wif := func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Credentials = v1alpha1.CredentialSource{WorkloadIdentityFederation: &v1alpha1.WorkloadIdentityFederation{
			Audience: "https://api.anthropic.com", FederationRuleID: "fdrl_1", OrganizationID: "org_1"}}
	}
	tenantTD := func(tn *v1alpha1.ClaudeTenant) {
		tn.Spec.SPIFFE = &v1alpha1.TenantSPIFFE{TrustDomain: "team-a.example"}
	}
	allowWIF := func(tn *v1alpha1.ClaudeTenant) {
		tn.Spec.Credentials.AllowedSources = []v1alpha1.CredentialSourceKind{v1alpha1.SourceWorkloadIdentityFederation}
	}
	cases := []struct {
		name string
		in   Input
		o    Options
		want string // a part of the violation's message; "" for none
	}{
		{"cert, no trust domain anywhere", Input{Policy: policy(), Tenant: tenant()}, noTD, "spec.credentials.vault.authMethod cert needs a SPIFFE identity, but ClaudeTenant team-a sets no spec.spiffe.trustDomain"},
		{"jwt, no tenant, no default", Input{Policy: policy(jwt)}, Options{NoTenant: NoTenantAllow}, "authMethod jwt needs a SPIFFE identity, but the operator sets no default"},
		{"federation, no trust domain", Input{Policy: policy(wif), Tenant: tenant(allowWIF)}, noTD, "spec.credentials.workloadIdentityFederation needs a SPIFFE identity"},
		{"cert, the tenant's trust domain", Input{Policy: policy(), Tenant: tenant(tenantTD)}, noTD, ""},
		{"cert, the operator's default", Input{Policy: policy(), Tenant: tenant()}, opts, ""},
		{"kubernetes auth needs none", Input{Policy: policy(k8s), Tenant: tenant()}, noTD, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, vs := Compute(c.in, c.o)
			switch {
			case c.want == "" && len(vs) > 0:
				t.Fatalf("violations %+v, want none", vs)
			case c.want != "" && (len(vs) != 1 || vs[0].Reason != v1alpha1.ReasonSPIFFERequired || !strings.Contains(vs[0].Message, c.want)):
				t.Fatalf("violations %+v, want one SPIFFERequired containing %q", vs, c.want)
			}
		})
	}
}

// TestWarnings: what an admitted policy asks for and does not get is reported with the field and the
// fix: a Redis backend without an operator Redis, a deny list that refuses every allowed model, an alias
// to a model that is not allowed, an end-user rule that can grant nothing.
func TestWarnings(t *testing.T) {
	noRedis := opts
	noRedis.RedisURL = ""
	withRedis := opts
	withRedis.RedisURL = "redis://redis.example:6379"
	cases := []struct {
		name   string
		mut    func(*v1alpha1.ClaudeAccessPolicy)
		o      Options
		reason string
		want   string
	}{
		{"as written", func(*v1alpha1.ClaudeAccessPolicy) {}, opts, "", ""},
		{"redis without an operator redis", func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Limits = &v1alpha1.LimitPolicy{Backend: v1alpha1.LimitBackendRedis}
			p.Spec.EndUser = &v1alpha1.EndUserPolicy{ReplayProtection: true}
		}, noRedis, v1alpha1.ReasonLimitsDowngraded, "spec.limits.backend is Redis, but the operator has no Redis (chart value redis.url), so each pod counts limits and budgets on its own (N pods allow N times a limit), and replay protection remembers tokens per pod"},
		{"redis with one", func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Limits = &v1alpha1.LimitPolicy{Backend: v1alpha1.LimitBackendRedis}
		}, withRedis, "", ""},
		{"deny covers allow", func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Models.Deny = []v1alpha1.ModelPattern{"claude-*"}
		}, opts, v1alpha1.ReasonRuleHasNoEffect, "spec.models.deny covers every pattern of the allowed models (claude-haiku-*, claude-sonnet-4-5)"},
		{"alias to a disallowed model", func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Models.Aliases = []v1alpha1.ModelAlias{{Name: "fast", Target: "claude-haiku-4-5"}, {Name: "best", Target: "claude-opus-4-1"}}
		}, opts, v1alpha1.ReasonRuleHasNoEffect, "spec.models.aliases[1] best -> claude-opus-4-1: the target is not an allowed model"},
		{"end-user rule outside allow", func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.EndUser = &v1alpha1.EndUserPolicy{Rules: []v1alpha1.ScopeRule{
				{Scopes: []string{"basic"}, Models: []v1alpha1.ModelPattern{"claude-haiku-*"}, MaxTokens: ptr.To[int64](1024)},
				{Scopes: []string{"pro"}, Models: []v1alpha1.ModelPattern{"claude-opus-*"}},
			}}
		}, opts, v1alpha1.ReasonRuleHasNoEffect, `spec.endUser.rules[1].models[0] "claude-opus-*" matches no allowed model (claude-haiku-*, claude-sonnet-4-5): the rule grants nothing`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := policy(c.mut)
			cfg, vs := Compute(Input{Policy: p}, withNoTenant(c.o))
			if len(vs) > 0 {
				t.Fatalf("not admitted: %+v", vs)
			}
			ws := Warnings(p, cfg)
			switch {
			case c.reason == "" && len(ws) > 0:
				t.Fatalf("warnings %+v, want none", ws)
			case c.reason != "" && (len(ws) != 1 || ws[0].Reason != c.reason || !strings.Contains(ws[0].Message, c.want)):
				t.Fatalf("warnings %+v, want one %s containing %q", ws, c.reason, c.want)
			}
		})
	}
}

func withNoTenant(o Options) Options {
	o.NoTenant = NoTenantAllow
	return o
}
