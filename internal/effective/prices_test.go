package effective

import (
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/pricing"
)

// TestUSDBudgetsNeedPrices: a config with a USD budget (the policy's or its tenant's) carries the
// cluster's prices and is admitted only when each allowed model is priced; one without carries none.
func TestUSDBudgetsNeedPrices(t *testing.T) {
	usd := func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Budgets = []v1alpha1.Budget{{Name: "monthly", Window: "Month", USD: "25"}}
	}
	tenantUSD := func(t *v1alpha1.ClaudeTenant) {
		t.Spec.Budgets = []v1alpha1.Budget{{Name: "spend", Key: v1alpha1.KeyNamespace, Window: "Month", USD: "500"}}
	}
	tokens := func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Budgets = []v1alpha1.Budget{{Name: "monthly", Window: "Month", Tokens: new(int64(1000))}}
	}
	haikuOnly := []policyconfig.Price{{Model: "claude-haiku-4-5*", TokenPrices: policyconfig.TokenPrices{InputUSD: "1", OutputUSD: "5"}}}
	cases := []struct {
		name       string
		in         Input
		wantPrices int
		message    string // of the one violation; "" when admitted
	}{
		{"USD budget, every model priced", Input{Policy: policy(usd), Tenant: tenant(), Prices: pricing.Builtin()}, len(pricing.Builtin()), ""},
		{"no USD budget: no prices rendered", Input{Policy: policy(tokens), Tenant: tenant(), Prices: pricing.Builtin()}, 0, ""},
		{"the policy's USD budget, a model unpriced", Input{Policy: policy(usd), Tenant: tenant(), Prices: haikuOnly}, 0,
			`spec.models.allow[0] "claude-haiku-*" has no price, and the USD budget monthly needs one for every allowed model`},
		{"the tenant's USD budget applies to a policy without one", Input{Policy: policy(), Tenant: tenant(tenantUSD), Prices: haikuOnly}, 0,
			`spec.models.allow[0] "claude-haiku-*" has no price, and the ClaudeTenant team-a's USD budget spend needs one`},
		{"no price table at all", Input{Policy: policy(usd), Tenant: tenant()}, 0, `"claude-haiku-*" has no price`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, vs := Compute(c.in, opts)
			if c.message == "" {
				if len(vs) > 0 {
					t.Fatalf("not admitted: %v", vs)
				}
				if len(cfg.Prices) != c.wantPrices {
					t.Fatalf("%d prices rendered, want %d", len(cfg.Prices), c.wantPrices)
				}
				return
			}
			if len(vs) == 0 || vs[0].Reason != v1alpha1.ReasonUnpricedModel || !strings.Contains(vs[0].Message, c.message) {
				t.Fatalf("violations %v, want %s containing %q", vs, v1alpha1.ReasonUnpricedModel, c.message)
			}
			// claude-sonnet-4-5 (allow[1]) is unpriced too, and named.
			if len(vs) != 2 || !strings.Contains(vs[1].Message, `spec.models.allow[1] "claude-sonnet-4-5"`) {
				t.Fatalf("violations %v, want one per unpriced allow entry", vs)
			}
		})
	}
}
