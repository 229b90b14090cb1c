package limits

import (
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// TestCost prices usage the way the API bills it: each token kind at its own price, cache writes by
// lifetime, tiers by usage.service_tier, web searches per thousand; unset cache prices follow the API's
// multipliers of the tier's input, so no kind of token is ever free by omission.
func TestCost(t *testing.T) {
	sonnet := policyconfig.Price{Model: "claude-sonnet-*",
		TokenPrices:         policyconfig.TokenPrices{InputUSD: "3", OutputUSD: "15"},
		Batch:               &policyconfig.TokenPrices{InputUSD: "1.5", OutputUSD: "7.5"},
		Priority:            &policyconfig.TokenPrices{OutputUSD: "30"},
		WebSearchPer1000USD: "10"}
	explicit := policyconfig.Price{Model: "m", TokenPrices: policyconfig.TokenPrices{InputUSD: "1", OutputUSD: "2",
		CacheReadUSD: "0.5", CacheWrite5mUSD: "0.7", CacheWrite1hUSD: "0.9"}}
	const mtok = 1_000_000
	cases := []struct {
		name  string
		price policyconfig.Price
		u     usage.Usage
		want  int64 // micro-USD
	}{
		{"input and output", sonnet, usage.Usage{InputTokens: mtok, OutputTokens: mtok}, 18_000_000},
		{"cache read at 0.1x input", sonnet, usage.Usage{CacheReadInputTokens: mtok}, 300_000},
		{"unsplit cache writes at the 5-minute price, 1.25x input", sonnet, usage.Usage{CacheCreationInputTokens: mtok}, 3_750_000},
		{"1-hour writes at 2x input", sonnet, usage.Usage{CacheCreationInputTokens: mtok, CacheCreation1h: mtok}, 6_000_000},
		{"a split total: the rest is 5-minute", sonnet, usage.Usage{CacheCreationInputTokens: 3 * mtok, CacheCreation5m: mtok, CacheCreation1h: mtok},
			2*3_750_000 + 6_000_000},
		{"web searches per thousand", sonnet, usage.Usage{WebSearchRequests: 3}, 30_000},
		{"batch tier", sonnet, usage.Usage{InputTokens: mtok, OutputTokens: mtok, CacheReadInputTokens: mtok, ServiceTier: "batch"},
			1_500_000 + 7_500_000 + 150_000},
		{"priority tier: input from the standard tier", sonnet, usage.Usage{InputTokens: mtok, OutputTokens: mtok, ServiceTier: "priority"}, 33_000_000},
		{"standard tier named", sonnet, usage.Usage{OutputTokens: mtok, ServiceTier: "standard"}, 15_000_000},
		{"explicit cache prices", explicit, usage.Usage{CacheReadInputTokens: mtok, CacheCreationInputTokens: 2 * mtok, CacheCreation1h: mtok}, 500_000 + 700_000 + 900_000},
		{"a tier without prices of its own costs the standard", explicit, usage.Usage{InputTokens: mtok, ServiceTier: "batch"}, 1_000_000},
		{"another model costs nothing here", sonnet, usage.Usage{InputTokens: mtok}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs, err := Compile(&policyconfig.Config{Prices: []policyconfig.Price{c.price}})
			if err != nil {
				t.Fatal(err)
			}
			model := "claude-sonnet-4-5"
			if c.price.Model == "m" {
				model = "m"
			}
			if strings.HasPrefix(c.name, "another model") {
				model = "claude-haiku-4-5"
			}
			if got := rs.cost(model, c.u); got != c.want {
				t.Fatalf("cost = %d micro-USD, want %d", got, c.want)
			}
		})
	}
}

func TestCompilePriceErrorsNameTheField(t *testing.T) {
	_, err := Compile(&policyconfig.Config{Prices: []policyconfig.Price{{Model: "m",
		TokenPrices: policyconfig.TokenPrices{InputUSD: "1", OutputUSD: "2"}, Batch: &policyconfig.TokenPrices{CacheWrite1hUSD: "x"}}}})
	if err == nil || !strings.Contains(err.Error(), `price for "m"`) || !strings.Contains(err.Error(), "cacheWrite1hUSD") {
		t.Fatalf("err = %v, want one naming the model and the field", err)
	}
}
