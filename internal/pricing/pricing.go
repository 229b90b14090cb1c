// Package pricing resolves the prices USD budgets are counted with: the platform team's
// ClaudePriceTable, over the table built into the operator, as the policyconfig.Price list every
// config with a USD budget carries. It also decides which allowed models that list leaves unpriced.
package pricing

import (
	_ "embed"
	"fmt"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/glob"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

//go:embed builtin.yaml
var builtinYAML []byte

// builtinTable is builtin.yaml.
type builtinTable struct {
	AsOf   string                `json:"asOf"`
	Prices []v1alpha1.ModelPrice `json:"prices"`
}

var builtin = sync.OnceValue(func() builtinTable {
	var t builtinTable
	if err := yaml.UnmarshalStrict(builtinYAML, &t); err != nil {
		panic(fmt.Sprintf("pricing: builtin.yaml: %v", err)) // caught by TestBuiltinIsValid
	}
	return t
})

// BuiltinAsOf is the date of the built-in prices.
func BuiltinAsOf() string { return builtin().AsOf }

// Builtin returns the built-in prices, in order.
func Builtin() []policyconfig.Price { return convert(builtin().Prices) }

// Resolve returns the prices in force with table t (nil: there is none): t's entries, then, unless t
// excludes them, the built-in ones.
func Resolve(t *v1alpha1.ClaudePriceTable) []policyconfig.Price {
	if t == nil {
		return Builtin()
	}
	out := convert(t.Spec.Prices)
	if t.Spec.Builtin != v1alpha1.BuiltinExclude {
		out = append(out, Builtin()...)
	}
	return out
}

// Unpriced returns the patterns of allow some model of which no price matches. A pattern is priced
// when one entry's glob covers it whole: which entry prices a model then depends on order, but every
// model has one. Coverage by several entries together is not credited (it is rarely what the table
// author meant, and cannot be told at a glance from the table).
func Unpriced(prices []policyconfig.Price, allow []string) []string {
	var out []string
	for _, a := range allow {
		if !priced(prices, a) {
			out = append(out, a)
		}
	}
	return out
}

func priced(prices []policyconfig.Price, pattern string) bool {
	for _, p := range prices {
		if glob.Covers(p.Model, pattern) {
			return true
		}
	}
	return false
}

// Shadowed returns, for each entry of prices that an earlier entry covers whole (so it never prices
// anything), its index and the earlier one's.
func Shadowed(prices []v1alpha1.ModelPrice) [][2]int {
	var out [][2]int
	for i := range prices {
		for j := range i {
			if glob.Covers(string(prices[j].Model), string(prices[i].Model)) {
				out = append(out, [2]int{i, j})
				break
			}
		}
	}
	return out
}

func convert(ps []v1alpha1.ModelPrice) []policyconfig.Price {
	out := make([]policyconfig.Price, 0, len(ps))
	for _, p := range ps {
		out = append(out, policyconfig.Price{
			Model:               string(p.Model),
			TokenPrices:         tokenPrices(p.TokenPrices),
			Batch:               tierPrices(p.Batch),
			Priority:            tierPrices(p.Priority),
			WebSearchPer1000USD: string(p.WebSearchPer1000),
		})
	}
	return out
}

func tokenPrices(t v1alpha1.TokenPrices) policyconfig.TokenPrices {
	return policyconfig.TokenPrices{InputUSD: string(t.Input), OutputUSD: string(t.Output), CacheReadUSD: string(t.CacheRead),
		CacheWrite5mUSD: string(t.CacheWrite5m), CacheWrite1hUSD: string(t.CacheWrite1h)}
}

func tierPrices(t *v1alpha1.TokenPrices) *policyconfig.TokenPrices {
	if t == nil {
		return nil
	}
	tp := tokenPrices(*t)
	return &tp
}
