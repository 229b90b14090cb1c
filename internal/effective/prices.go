package effective

import (
	"fmt"
	"slices"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/pricing"
)

// prices renders the cluster's prices into c when it has a USD budget (the policy's or its tenant's),
// and refuses it when one of its allowed models has no price: an unpriced model would cost nothing,
// and the budget would never trip.
func prices(c *policyconfig.Config, p *v1alpha1.ClaudeAccessPolicy, ps []policyconfig.Price) []Violation {
	i := slices.IndexFunc(c.Budgets, func(b policyconfig.Budget) bool { return b.USD != "" })
	if i < 0 {
		return nil
	}
	c.Prices = ps
	b := c.Budgets[i]
	whose := "USD budget " + b.Name
	if b.Source == policyconfig.SourceTenant {
		whose = fmt.Sprintf("ClaudeTenant %s's USD budget %s", c.Policy.Tenant, b.Name)
	}
	var vs []Violation
	for _, m := range pricing.Unpriced(ps, c.Models.Allow) {
		j := slices.Index(patterns(p.Spec.Models.Allow), m)
		vs = append(vs, Violation{v1alpha1.ReasonUnpricedModel, fmt.Sprintf(
			"spec.models.allow[%d] %q has no price, and the %s needs one for every allowed model: no entry of ClaudePriceTable %s or the built-in prices covers all of it; narrow spec.models.allow, or ask the platform team to price it",
			j, m, whose, v1alpha1.PriceTableName)})
	}
	return vs
}
