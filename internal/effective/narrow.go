package effective

import (
	"fmt"
	"slices"
	"strings"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// credentials translates the credential source and confines it to the tenant. Without a tenant (an
// operator that admits untenanted namespaces) the Vault path is used as written.
func credentials(c *policyconfig.Config, p *v1alpha1.ClaudeAccessPolicy, t *v1alpha1.ClaudeTenant, o Options) []Violation {
	cr := &p.Spec.Credentials
	kind, field := sourceKind(cr)
	if t != nil && !sourceAllowed(t, kind) {
		return []Violation{{v1alpha1.ReasonCredentialsNotAllowed, fmt.Sprintf("spec.credentials.%s is not allowed by ClaudeTenant %s (allowed sources: %v)", field, t.Name, allowedSources(t))}}
	}
	switch kind {
	case v1alpha1.SourceVault:
		return vault(c, p, t, o)
	case v1alpha1.SourceSecretRef:
		c.Credentials.Secret = &policyconfig.SecretSource{Name: cr.SecretRef.Name, Key: cr.SecretRef.Key}
	case v1alpha1.SourceWorkloadIdentityFederation:
		w := cr.WorkloadIdentityFederation
		c.Credentials.WorkloadIdentityFederation = &policyconfig.WIFSource{Audience: w.Audience, TokenURL: w.TokenURL,
			FederationRuleID: w.FederationRuleID, OrganizationID: w.OrganizationID, ServiceAccountID: w.ServiceAccountID, WorkspaceID: w.WorkspaceID}
		return federation(w, t, o)
	}
	return nil
}

// federation checks a policy's token endpoint and audience against the tenant's (or, without a tenant
// or a list, the defaults): the token endpoint receives the workload's JWT-SVID, which must not reach a
// host the platform did not choose, nor be one Vault would accept.
func federation(w *v1alpha1.WorkloadIdentityFederation, t *v1alpha1.ClaudeTenant, o Options) []Violation {
	var bounds v1alpha1.TenantFederation
	by := "the operator"
	if t != nil {
		by = "ClaudeTenant " + t.Name
		if f := t.Spec.Credentials.WorkloadIdentityFederation; f != nil {
			bounds = *f
		}
	}
	def := policyconfig.DefaultTokenURL(o.Upstream)
	urls := bounds.TokenURLs
	if len(urls) == 0 {
		urls = []string{def}
	}
	var vs []Violation
	tokenURL := w.TokenURL
	if tokenURL == "" {
		tokenURL = def
	}
	if !slices.Contains(urls, tokenURL) {
		vs = append(vs, Violation{v1alpha1.ReasonCredentialsNotAllowed, fmt.Sprintf("spec.credentials.workloadIdentityFederation.tokenURL %q is not allowed by %s (allowed: %s)", tokenURL, by, strings.Join(urls, ", "))})
	}
	switch {
	case slices.Contains(o.VaultAudiences, w.Audience):
		vs = append(vs, Violation{v1alpha1.ReasonCredentialsNotAllowed, fmt.Sprintf("spec.credentials.workloadIdentityFederation.audience %q is an audience Vault accepts; a JWT-SVID for it must never leave for a token endpoint", w.Audience)})
	case len(bounds.Audiences) > 0 && !slices.Contains(bounds.Audiences, w.Audience):
		vs = append(vs, Violation{v1alpha1.ReasonCredentialsNotAllowed, fmt.Sprintf("spec.credentials.workloadIdentityFederation.audience %q is not allowed by %s (allowed: %s)", w.Audience, by, strings.Join(bounds.Audiences, ", "))})
	}
	return vs
}

func sourceKind(cr *v1alpha1.CredentialSource) (v1alpha1.CredentialSourceKind, string) {
	switch {
	case cr.Vault != nil:
		return v1alpha1.SourceVault, "vault"
	case cr.SecretRef != nil:
		return v1alpha1.SourceSecretRef, "secretRef"
	default:
		return v1alpha1.SourceWorkloadIdentityFederation, "workloadIdentityFederation"
	}
}

func allowedSources(t *v1alpha1.ClaudeTenant) []v1alpha1.CredentialSourceKind {
	if len(t.Spec.Credentials.AllowedSources) == 0 {
		return []v1alpha1.CredentialSourceKind{v1alpha1.SourceVault}
	}
	return t.Spec.Credentials.AllowedSources
}

func sourceAllowed(t *v1alpha1.ClaudeTenant, k v1alpha1.CredentialSourceKind) bool {
	return slices.Contains(allowedSources(t), k)
}

func vault(c *policyconfig.Config, p *v1alpha1.ClaudeAccessPolicy, t *v1alpha1.ClaudeTenant, o Options) []Violation {
	v := p.Spec.Credentials.Vault
	src := &policyconfig.VaultSource{
		Address:    o.VaultAddress,
		CACert:     o.VaultCACert,
		AuthMethod: string(v.AuthMethod),
		AuthMount:  o.VaultAuthMounts[string(v.AuthMethod)],
		Role:       v.Role,
		Audience:   v.Audience,
		Mount:      v.Mount,
		Path:       v.Path,
		Field:      v.Field,
	}
	if v.RefreshInterval != nil {
		src.RefreshInterval.Duration = v.RefreshInterval.Duration
	}
	if src.Mount == "" {
		src.Mount = policyconfig.DefaultVaultMount
	}
	c.Credentials.Vault = src
	if t == nil {
		return nil
	}
	tv := t.Spec.Credentials.Vault
	if tv == nil {
		return []Violation{{v1alpha1.ReasonCredentialsNotAllowed, fmt.Sprintf("spec.credentials.vault cannot be used: ClaudeTenant %s does not configure spec.credentials.vault", t.Name)}}
	}
	var vs []Violation
	if !slices.Contains(tv.Roles, v.Role) {
		vs = append(vs, Violation{v1alpha1.ReasonCredentialsNotAllowed, fmt.Sprintf("spec.credentials.vault.role %q is not allowed by ClaudeTenant %s (allowed roles: %s)", v.Role, t.Name, strings.Join(tv.Roles, ", "))})
	}
	tenantMount := tv.Mount
	if tenantMount == "" {
		tenantMount = policyconfig.DefaultVaultMount
	}
	if src.Mount != tenantMount {
		vs = append(vs, Violation{v1alpha1.ReasonCredentialsNotAllowed, fmt.Sprintf("spec.credentials.vault.mount %q is not allowed by ClaudeTenant %s (its secrets live in mount %q)", src.Mount, t.Name, tenantMount)})
	}
	// The policy path is relative to the tenant's prefix and the API server already refused ".."
	// segments, so the joined path cannot leave the prefix. Check again: this is the isolation boundary.
	joined := tv.PathPrefix + "/" + v.Path
	if err := policyconfig.RelativePath(joined); err != nil {
		vs = append(vs, Violation{v1alpha1.ReasonCredentialsNotAllowed, fmt.Sprintf("spec.credentials.vault.path %q cannot be placed under ClaudeTenant %s prefix %q: %v", v.Path, t.Name, tv.PathPrefix, err)})
	}
	src.Path = joined
	return vs
}

// narrow applies the tenant's ceilings to c and reports what the policy asks for beyond them.
func narrow(c *policyconfig.Config, p *v1alpha1.ClaudeAccessPolicy, t *v1alpha1.ClaudeTenant) []Violation {
	var vs []Violation
	exceeds := func(format string, args ...any) {
		vs = append(vs, Violation{v1alpha1.ReasonExceedsTenantCeiling, fmt.Sprintf(format, args...)})
	}
	s := &p.Spec
	for i, a := range s.Models.Allow {
		if !coveredBy(t, string(a)) {
			exceeds("spec.models.allow[%d] %q is not allowed by ClaudeTenant %s (it allows %s)", i, a, t.Name, tenantModels(t))
		}
	}
	ceiling := t.Spec.Models.MaxTokens
	if ceiling != nil {
		for i, mt := range s.Models.MaxTokens {
			if mt.Limit > *ceiling {
				exceeds("spec.models.maxTokens[%d].limit %d exceeds the max_tokens ceiling %d of ClaudeTenant %s", i, mt.Limit, *ceiling, t.Name)
			}
		}
		// The tenant ceiling is the last rule, so models no policy rule names are capped too.
		c.Models.MaxTokens = append(c.Models.MaxTokens, policyconfig.MaxTokensRule{Model: "*", Limit: *ceiling, Action: policyconfig.ActionReject, Source: policyconfig.SourceTenant})
	}
	if e := s.EndUser; e != nil {
		for i, r := range e.Rules {
			for j, m := range r.Models {
				if !coveredBy(t, string(m)) {
					exceeds("spec.endUser.rules[%d].models[%d] %q is not allowed by ClaudeTenant %s (it allows %s)", i, j, m, t.Name, tenantModels(t))
				}
			}
			if ceiling != nil && r.MaxTokens != nil && *r.MaxTokens > *ceiling {
				exceeds("spec.endUser.rules[%d].maxTokens %d exceeds the max_tokens ceiling %d of ClaudeTenant %s", i, *r.MaxTokens, *ceiling, t.Name)
			}
		}
	}
	if tb := t.Spec.MaxRequestBytes; tb != nil {
		switch {
		case s.MaxRequestBytes == nil:
			c.MaxRequestBytes = *tb
		case *s.MaxRequestBytes > *tb:
			exceeds("spec.maxRequestBytes %d exceeds the ceiling %d of ClaudeTenant %s", *s.MaxRequestBytes, *tb, t.Name)
		}
	}
	if s.ShadowMode && !t.Spec.AllowShadowMode {
		exceeds("spec.shadowMode is not allowed by ClaudeTenant %s (spec.allowShadowMode is false)", t.Name)
	}
	if sp := t.Spec.SPIFFE; sp != nil {
		c.Identity.TrustDomain = sp.TrustDomain
	}
	c.Limits.Rules = append(c.Limits.Rules, limitRules(t.Spec.Limits, policyconfig.SourceTenant)...)
	c.Budgets = append(c.Budgets, budgets(t.Spec.Budgets, policyconfig.SourceTenant)...)
	return vs
}

// tenantModels lists the model patterns a tenant allows, for messages.
func tenantModels(t *v1alpha1.ClaudeTenant) string {
	return strings.Join(patterns(t.Spec.Models.Allow), ", ")
}

// tenantBackend has a tenant's limits and budgets count where the tenant chose, whatever the policy
// says: in the operator's Redis, shared by every pod of the namespace (counted per pod, a ceiling would
// grow with the replicas and reset with each restart), with the stricter of the two failure modes. The
// sidecar has one limiter, so the policy's own rules count there too. Without a Redis the policy is
// not admitted.
func tenantBackend(c *policyconfig.Config, p *v1alpha1.ClaudeAccessPolicy, t *v1alpha1.ClaudeTenant, o Options) []Violation {
	if len(t.Spec.Limits) == 0 && len(t.Spec.Budgets) == 0 {
		return nil
	}
	if !useRedis(c, p.Namespace, o) {
		return []Violation{{v1alpha1.ReasonNoSharedBackend, fmt.Sprintf(
			"ClaudeTenant %s sets limits or budgets, which count in the operator's shared Redis, and the operator has none (chart value redis.url): counted in each pod, a tenant ceiling would bound nothing; ask the platform team to configure Redis",
			t.Name)}}
	}
	if c.Limits.FailureMode == "" || t.Spec.LimitsFailureMode != v1alpha1.FailOpen {
		// FailOpen needs both: the tenant's and, when the policy has limits of its own, the policy's.
		c.Limits.FailureMode = string(t.Spec.LimitsFailureMode)
		if c.Limits.FailureMode == "" {
			c.Limits.FailureMode = policyconfig.FailClosed
		}
	}
	return nil
}
