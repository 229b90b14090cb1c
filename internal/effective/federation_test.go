package effective

import (
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
)

// TestFederationIsBoundedByTheTenant: a policy exchanges its JWT-SVID only at a token endpoint the
// tenant allows (by default the upstream's own), with an audience the tenant allows and never one Vault
// accepts; the message names the field and what is allowed.
func TestFederationIsBoundedByTheTenant(t *testing.T) {
	wif := func(tokenURL, audience string) func(*v1alpha1.ClaudeAccessPolicy) {
		return func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Credentials = v1alpha1.CredentialSource{WorkloadIdentityFederation: &v1alpha1.WorkloadIdentityFederation{
				Audience: audience, TokenURL: tokenURL, FederationRuleID: "fdrl_1", OrganizationID: "org_1"}}
		}
	}
	allow := func(f *v1alpha1.TenantFederation) func(*v1alpha1.ClaudeTenant) {
		return func(tn *v1alpha1.ClaudeTenant) {
			tn.Spec.Credentials.AllowedSources = []v1alpha1.CredentialSourceKind{v1alpha1.SourceWorkloadIdentityFederation}
			tn.Spec.Credentials.WorkloadIdentityFederation = f
		}
	}
	o := opts
	o.VaultAudiences = []string{"vault"}
	own := &v1alpha1.TenantFederation{TokenURLs: []string{"https://sts.team-a.example/token"}, Audiences: []string{"anthropic"}}
	cases := []struct {
		name   string
		policy func(*v1alpha1.ClaudeAccessPolicy)
		tenant *v1alpha1.TenantFederation
		want   []string // parts of the violations' messages; none for admitted
	}{
		{"the upstream's endpoint by default", wif("", "anthropic"), nil, nil},
		{"the upstream's endpoint named", wif("https://api.anthropic.com/v1/oauth/token", "anthropic"), nil, nil},
		{"another endpoint without the tenant's leave", wif("https://attacker.example/token", "anthropic"), nil,
			[]string{`spec.credentials.workloadIdentityFederation.tokenURL "https://attacker.example/token" is not allowed by ClaudeTenant team-a (allowed: https://api.anthropic.com/v1/oauth/token)`}},
		{"an endpoint the tenant lists", wif("https://sts.team-a.example/token", "anthropic"), own, nil},
		{"the upstream's endpoint when the tenant lists others", wif("", "anthropic"), own,
			[]string{`tokenURL "https://api.anthropic.com/v1/oauth/token" is not allowed by ClaudeTenant team-a (allowed: https://sts.team-a.example/token)`}},
		{"Vault's audience", wif("", "vault"), nil, []string{`audience "vault" is an audience Vault accepts`}},
		{"an audience the tenant does not list", wif("https://sts.team-a.example/token", "other"), own,
			[]string{`audience "other" is not allowed by ClaudeTenant team-a (allowed: anthropic)`}},
		{"both wrong", wif("https://attacker.example/token", "vault"), own, []string{"tokenURL", `audience "vault"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, vs := Compute(Input{Policy: policy(c.policy), Tenant: tenant(allow(c.tenant))}, o)
			if len(vs) != len(c.want) {
				t.Fatalf("violations %+v, want %d", vs, len(c.want))
			}
			for i, w := range c.want {
				if vs[i].Reason != v1alpha1.ReasonCredentialsNotAllowed || !strings.Contains(vs[i].Message, w) {
					t.Errorf("violation %d = %+v, want CredentialsNotAllowed with %q", i, vs[i], w)
				}
			}
		})
	}
	// Without a tenant (an operator that admits untenanted namespaces) the default holds too.
	if _, vs := Compute(Input{Policy: policy(wif("https://attacker.example/token", "anthropic"))}, Options{NoTenant: NoTenantAllow, TrustDomain: "cluster.local"}); len(vs) != 1 ||
		!strings.Contains(vs[0].Message, "is not allowed by the operator (allowed: https://api.anthropic.com/v1/oauth/token)") {
		t.Errorf("untenanted: violations %+v", vs)
	}
}
