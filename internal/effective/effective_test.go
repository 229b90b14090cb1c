package effective

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

func policy(mut ...func(*v1alpha1.ClaudeAccessPolicy)) *v1alpha1.ClaudeAccessPolicy {
	p := &v1alpha1.ClaudeAccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "chat", Generation: 3},
		Spec: v1alpha1.ClaudeAccessPolicySpec{
			Credentials: v1alpha1.CredentialSource{Vault: &v1alpha1.VaultCredentials{
				AuthMethod: v1alpha1.VaultAuthCert, Role: "team-a", Mount: "secret", Path: "anthropic", Field: "api_key",
			}},
			Models: v1alpha1.ModelPolicy{Allow: []v1alpha1.ModelPattern{"claude-haiku-*", "claude-sonnet-4-5"}},
		},
	}
	for _, m := range mut {
		m(p)
	}
	return p
}

func tenant(mut ...func(*v1alpha1.ClaudeTenant)) *v1alpha1.ClaudeTenant {
	t := &v1alpha1.ClaudeTenant{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a"},
		Spec: v1alpha1.ClaudeTenantSpec{
			Models: v1alpha1.TenantModels{Allow: []v1alpha1.ModelPattern{"claude-haiku-*", "claude-sonnet-*"}, MaxTokens: ptr.To[int64](8192)},
			Credentials: v1alpha1.TenantCredentials{Vault: &v1alpha1.TenantVault{
				PathPrefix: "tenants/team-a", Mount: "secret", Roles: []string{"team-a"},
			}},
			Limits: []v1alpha1.RateLimit{{Name: "ns-rpm", Key: v1alpha1.KeyNamespace, Window: "Minute", Requests: ptr.To[int64](600)}},
		},
	}
	for _, m := range mut {
		m(t)
	}
	return t
}

// opts is an operator with Redis, where tenant ceilings count (tenantBackend).
var opts = Options{NoTenant: NoTenantDeny, VaultAddress: "https://vault.example:8200", Upstream: "https://api.anthropic.com", TrustDomain: "cluster.local",
	RedisURL: "redis://redis.claude-guard-system:6379/0"}

func TestComputeViolations(t *testing.T) {
	cases := []struct {
		name    string
		in      Input
		opts    Options
		reason  string
		message string
	}{
		{
			name:    "no tenant denies by default",
			in:      Input{Policy: policy()},
			opts:    opts,
			reason:  v1alpha1.ReasonNoTenant,
			message: "namespace team-a is not selected by any ClaudeTenant",
		},
		{
			name:    "two tenants conflict",
			in:      Input{Policy: policy(), ConflictingTenants: []string{"a", "b"}},
			opts:    opts,
			reason:  v1alpha1.ReasonTenantConflict,
			message: "namespace team-a is selected by more than one ClaudeTenant; no tenant applies",
		},
		{
			name: "model beyond tenant",
			in: Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) {
				p.Spec.Models.Allow = append(p.Spec.Models.Allow, "claude-opus-*")
			}), Tenant: tenant()},
			opts:    opts,
			reason:  v1alpha1.ReasonExceedsTenantCeiling,
			message: `spec.models.allow[2] "claude-opus-*" is not allowed by ClaudeTenant team-a (it allows claude-haiku-*, claude-sonnet-*)`,
		},
		{
			name: "glob wider than tenant",
			in: Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) {
				p.Spec.Models.Allow = []v1alpha1.ModelPattern{"claude-*"}
			}), Tenant: tenant()},
			opts:    opts,
			reason:  v1alpha1.ReasonExceedsTenantCeiling,
			message: `spec.models.allow[0] "claude-*" is not allowed by ClaudeTenant team-a`,
		},
		{
			name: "max tokens beyond ceiling",
			in: Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) {
				p.Spec.Models.MaxTokens = []v1alpha1.ModelMaxTokens{{Model: "claude-haiku-*", Limit: 16000, Action: v1alpha1.ActionClamp}}
			}), Tenant: tenant()},
			opts:    opts,
			reason:  v1alpha1.ReasonExceedsTenantCeiling,
			message: "spec.models.maxTokens[0].limit 16000 exceeds the max_tokens ceiling 8192 of ClaudeTenant team-a",
		},
		{
			name: "end-user rule model beyond tenant",
			in: Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) {
				p.Spec.EndUser = &v1alpha1.EndUserPolicy{Mode: v1alpha1.EndUserStrict, Issuers: []v1alpha1.OIDCIssuer{{URL: "https://idp.example", Audiences: []string{"x"}}},
					Rules: []v1alpha1.ScopeRule{{Scopes: []string{"admin"}, Models: []v1alpha1.ModelPattern{"claude-opus-*"}}}}
			}), Tenant: tenant()},
			opts:    opts,
			reason:  v1alpha1.ReasonExceedsTenantCeiling,
			message: `spec.endUser.rules[0].models[0] "claude-opus-*" is not allowed by ClaudeTenant team-a`,
		},
		{
			name:    "vault role not allowed",
			in:      Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) { p.Spec.Credentials.Vault.Role = "team-b" }), Tenant: tenant()},
			opts:    opts,
			reason:  v1alpha1.ReasonCredentialsNotAllowed,
			message: `spec.credentials.vault.role "team-b" is not allowed by ClaudeTenant team-a (allowed roles: team-a)`,
		},
		{
			name:    "vault mount not allowed",
			in:      Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) { p.Spec.Credentials.Vault.Mount = "kv-b" }), Tenant: tenant()},
			opts:    opts,
			reason:  v1alpha1.ReasonCredentialsNotAllowed,
			message: `spec.credentials.vault.mount "kv-b" is not allowed by ClaudeTenant team-a`,
		},
		{
			name: "secretRef not allowed by default",
			in: Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) {
				p.Spec.Credentials = v1alpha1.CredentialSource{SecretRef: &v1alpha1.SecretKeyRef{Name: "k", Key: "key"}}
			}), Tenant: tenant()},
			opts:    opts,
			reason:  v1alpha1.ReasonCredentialsNotAllowed,
			message: "spec.credentials.secretRef is not allowed by ClaudeTenant team-a",
		},
		{
			name:    "shadow mode needs the tenant's consent",
			in:      Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) { p.Spec.ShadowMode = true }), Tenant: tenant()},
			opts:    opts,
			reason:  v1alpha1.ReasonExceedsTenantCeiling,
			message: "spec.shadowMode is not allowed by ClaudeTenant team-a",
		},
		{
			name: "request bytes beyond tenant",
			in: Input{Policy: policy(func(p *v1alpha1.ClaudeAccessPolicy) { p.Spec.MaxRequestBytes = ptr.To[int64](2 << 20) }),
				Tenant: tenant(func(t *v1alpha1.ClaudeTenant) { t.Spec.MaxRequestBytes = ptr.To[int64](1 << 20) })},
			opts:    opts,
			reason:  v1alpha1.ReasonExceedsTenantCeiling,
			message: "spec.maxRequestBytes 2097152 exceeds the ceiling 1048576 of ClaudeTenant team-a",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, vs := Compute(c.in, c.opts)
			if cfg != nil {
				t.Fatalf("expected no config, got %+v", cfg)
			}
			if len(vs) != 1 {
				t.Fatalf("expected one violation, got %+v", vs)
			}
			if vs[0].Reason != c.reason || !strings.Contains(vs[0].Message, c.message) {
				t.Fatalf("got %s: %q\nwant %s containing %q", vs[0].Reason, vs[0].Message, c.reason, c.message)
			}
		})
	}
}

func TestComputeNarrowsToTenant(t *testing.T) {
	p := policy(func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Models.MaxTokens = []v1alpha1.ModelMaxTokens{{Model: "claude-haiku-*", Limit: 4096, Action: v1alpha1.ActionClamp}}
		p.Spec.Limits = &v1alpha1.LimitPolicy{Rules: []v1alpha1.RateLimit{{Name: "rpm", Window: "Minute", Requests: ptr.To[int64](60)}}}
	})
	tn := tenant(func(t *v1alpha1.ClaudeTenant) { t.Spec.SPIFFE = &v1alpha1.TenantSPIFFE{TrustDomain: "prod.example"} })
	cfg, vs := Compute(Input{Policy: p, Tenant: tn}, opts)
	if len(vs) != 0 {
		t.Fatalf("unexpected violations: %+v", vs)
	}
	if got, want := cfg.Credentials.Vault.Path, "tenants/team-a/anthropic"; got != want {
		t.Errorf("vault path = %q, want %q", got, want)
	}
	if got := cfg.Credentials.Vault.Address; got != opts.VaultAddress {
		t.Errorf("vault address = %q", got)
	}
	wantMT := []policyconfig.MaxTokensRule{{Model: "claude-haiku-*", Limit: 4096, Action: "Clamp"}, {Model: "*", Limit: 8192, Action: "Reject", Source: "tenant"}}
	if len(cfg.Models.MaxTokens) != 2 || cfg.Models.MaxTokens[0] != wantMT[0] || cfg.Models.MaxTokens[1] != wantMT[1] {
		t.Errorf("maxTokens = %+v, want %+v", cfg.Models.MaxTokens, wantMT)
	}
	if len(cfg.Limits.Rules) != 2 || cfg.Limits.Rules[0].Source != "policy" || cfg.Limits.Rules[1].Source != "tenant" || cfg.Limits.Rules[1].Key != "Namespace" {
		t.Errorf("limit rules = %+v", cfg.Limits.Rules)
	}
	if cfg.Identity.TrustDomain != "prod.example" || cfg.Identity.Namespace != "team-a" {
		t.Errorf("identity = %+v", cfg.Identity)
	}
	if cfg.Policy != (policyconfig.PolicyRef{Namespace: "team-a", Name: "chat", Generation: 3, Tenant: "team-a"}) {
		t.Errorf("policy ref = %+v", cfg.Policy)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("rendered config does not validate: %v", err)
	}
}

func TestComputeVaultAuthMount(t *testing.T) {
	o := opts
	o.VaultAuthMounts = map[string]string{"kubernetes": "kubernetes-prod-eu"}
	cases := []struct {
		name   string
		method v1alpha1.VaultAuthMethod
		want   string
	}{
		{"a method the operator mounts elsewhere", v1alpha1.VaultAuthKubernetes, "kubernetes-prod-eu"},
		{"a method at its own name", v1alpha1.VaultAuthCert, "cert"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := policy(func(p *v1alpha1.ClaudeAccessPolicy) { p.Spec.Credentials.Vault.AuthMethod = c.method })
			cfg, vs := Compute(Input{Policy: p, Tenant: tenant()}, o)
			if len(vs) != 0 {
				t.Fatalf("unexpected violations: %+v", vs)
			}
			if got := cfg.Credentials.Vault.AuthMount; got != c.want {
				t.Errorf("authMount = %q, want %q", got, c.want)
			}
		})
	}
}

func TestComputeNoTenantAllow(t *testing.T) {
	cfg, vs := Compute(Input{Policy: policy()}, Options{NoTenant: NoTenantAllow, TrustDomain: "cluster.local"})
	if len(vs) != 0 {
		t.Fatalf("unexpected violations: %+v", vs)
	}
	if cfg.Credentials.Vault.Path != "anthropic" || cfg.Policy.Tenant != "" {
		t.Fatalf("unexpected config: %+v", cfg)
	}
}

// TestDenyConfigValidates: the deny-all config is valid, and what it tells callers names the reasons
// and where to read more, never the violations' details (tenant names, Vault roles, ceilings).
func TestDenyConfigValidates(t *testing.T) {
	vs := []Violation{
		{v1alpha1.ReasonCredentialsNotAllowed, `spec.credentials.vault.role "reader" is not allowed by ClaudeTenant acme-private (allowed roles: acme-reader)`},
		{v1alpha1.ReasonExceedsTenantCeiling, "spec.models.maxTokens[0].limit 9000 exceeds the max_tokens ceiling 4096 of ClaudeTenant acme-private"},
		{v1alpha1.ReasonCredentialsNotAllowed, `spec.credentials.vault.mount "kv" is not allowed`},
	}
	c := Deny(policy(), "acme-private", vs, Options{})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	const want = "ClaudeAccessPolicy team-a/chat is not admitted (CredentialsNotAllowed, ExceedsTenantCeiling); its status says why: kubectl describe claudeaccesspolicy chat -n team-a"
	if c.Deny.Reason != want {
		t.Fatalf("reason = %q, want %q", c.Deny.Reason, want)
	}
	for _, secret := range []string{"acme-private", "acme-reader", "4096", "kv"} {
		if strings.Contains(c.Deny.Reason, secret) {
			t.Errorf("the reason callers see discloses %q", secret)
		}
	}
}
