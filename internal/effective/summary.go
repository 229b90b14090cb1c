package effective

import (
	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// Summary is the part of an admitted policy's rendered config c that its status shows (status.effective):
// what the sidecars enforce, ceilings and the tenant's rules included, for tenant admins who can read
// neither the ClaudeTenant nor, under the chart's RBAC sample, the rendered ConfigMap.
func Summary(c *policyconfig.Config) *v1alpha1.EffectivePolicy {
	e := &v1alpha1.EffectivePolicy{
		Models:          c.Models.Allow,
		DeniedModels:    c.Models.Deny,
		MaxRequestBytes: c.MaxRequestBytes,
		LimitsBackend:   c.Limits.Backend,
	}
	if e.LimitsBackend == "" {
		e.LimitsBackend = policyconfig.BackendLocal
	}
	for _, mt := range c.Models.MaxTokens {
		source := mt.Source
		if source == "" {
			source = policyconfig.SourcePolicy
		}
		e.MaxTokens = append(e.MaxTokens, v1alpha1.EffectiveCeiling{Model: mt.Model, Limit: mt.Limit, Action: mt.Action, Source: source})
	}
	for _, r := range c.Limits.Rules {
		e.Limits = append(e.Limits, v1alpha1.EffectiveLimit{Name: r.Name, Source: r.Source, Key: r.Key, Window: r.Window, Requests: r.Requests, Tokens: r.Tokens})
	}
	e.Budgets = budgetLimits(c.Budgets)
	return e
}

// BudgetLimits are bs, set by source (policy or tenant), as status.effective shows them.
func BudgetLimits(bs []v1alpha1.Budget, source string) []v1alpha1.EffectiveLimit {
	return budgetLimits(budgets(bs, source))
}

func budgetLimits(bs []policyconfig.Budget) []v1alpha1.EffectiveLimit {
	var out []v1alpha1.EffectiveLimit
	for _, b := range bs {
		out = append(out, v1alpha1.EffectiveLimit{Name: b.Name, Source: b.Source, Key: b.Key, Window: b.Window, Tokens: b.Tokens, USD: b.USD, Enforcement: enforcement(b)})
	}
	return out
}

// enforcement is b's enforcement as the status shows it: Soft when unset.
func enforcement(b policyconfig.Budget) string {
	if b.Enforcement == "" {
		return policyconfig.EnforcementSoft
	}
	return b.Enforcement
}
