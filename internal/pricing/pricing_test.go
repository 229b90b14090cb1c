package pricing

import (
	"slices"
	"testing"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/glob"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// TestBuiltinIsValid: the embedded table parses, every entry is a valid config price, and none is dead
// (covered whole by an earlier entry).
func TestBuiltinIsValid(t *testing.T) {
	ps := Builtin()
	if len(ps) == 0 || BuiltinAsOf() == "" {
		t.Fatalf("built-in table: %d prices, asOf %q", len(ps), BuiltinAsOf())
	}
	c := &policyconfig.Config{APIVersion: policyconfig.APIVersion, Kind: policyconfig.Kind,
		Credentials: policyconfig.Credentials{Env: &policyconfig.EnvSource{Name: "K"}}, Models: policyconfig.Models{Allow: []string{"*"}}, Prices: ps}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := Shadowed(builtin().Prices); len(s) > 0 {
		t.Fatalf("dead built-in entries (index, covered by): %v", s)
	}
}

// TestBuiltinPricesTheCurrentModels: each model's first match is its own price, and a family's next
// model is priced at the family's dearest.
func TestBuiltinPricesTheCurrentModels(t *testing.T) {
	want := map[string][2]string{
		"claude-opus-4-5-20251101":   {"5", "25"},
		"claude-opus-4-1-20250805":   {"15", "75"},
		"claude-opus-4-20250514":     {"15", "75"},
		"claude-opus-5":              {"15", "75"},
		"claude-sonnet-4-5-20250929": {"3", "15"},
		"claude-3-7-sonnet-20250219": {"3", "15"},
		"claude-haiku-4-5-20251001":  {"1", "5"},
		"claude-3-5-haiku-20241022":  {"0.8", "4"},
		"claude-3-haiku-20240307":    {"0.25", "1.25"},
		"claude-haiku-5":             {"1", "5"},
	}
	ps := Builtin()
	for model, io := range want {
		i := slices.IndexFunc(ps, func(p policyconfig.Price) bool { return glob.Match(p.Model, model) })
		if i < 0 {
			t.Errorf("%s: no price", model)
			continue
		}
		if got := [2]string{ps[i].InputUSD, ps[i].OutputUSD}; got != io {
			t.Errorf("%s: priced %v by %q, want %v", model, got, ps[i].Model, io)
		}
	}
}

func TestResolve(t *testing.T) {
	own := v1alpha1.ModelPrice{Model: "claude-sonnet-4-5*", TokenPrices: v1alpha1.TokenPrices{Input: "2", Output: "10"},
		Priority: &v1alpha1.TokenPrices{Output: "20"}, WebSearchPer1000: "8"}
	cases := []struct {
		name      string
		table     *v1alpha1.ClaudePriceTable
		wantFirst string
		wantLen   int
	}{
		{"no table: the built-in prices", nil, Builtin()[0].Model, len(Builtin())},
		{"the table's entries come first", &v1alpha1.ClaudePriceTable{Spec: v1alpha1.ClaudePriceTableSpec{Prices: []v1alpha1.ModelPrice{own}}},
			"claude-sonnet-4-5*", 1 + len(Builtin())},
		{"Exclude: the table alone", &v1alpha1.ClaudePriceTable{Spec: v1alpha1.ClaudePriceTableSpec{Builtin: v1alpha1.BuiltinExclude, Prices: []v1alpha1.ModelPrice{own}}},
			"claude-sonnet-4-5*", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := Resolve(c.table)
			if len(ps) != c.wantLen || ps[0].Model != c.wantFirst {
				t.Fatalf("%d prices, first %q; want %d, %q", len(ps), ps[0].Model, c.wantLen, c.wantFirst)
			}
		})
	}
	p := Resolve(&v1alpha1.ClaudePriceTable{Spec: v1alpha1.ClaudePriceTableSpec{Prices: []v1alpha1.ModelPrice{own}}})[0]
	if p.InputUSD != "2" || p.OutputUSD != "10" || p.Priority == nil || p.Priority.OutputUSD != "20" || p.Batch != nil || p.WebSearchPer1000USD != "8" {
		t.Fatalf("converted entry: %+v", p)
	}
}

func TestUnpriced(t *testing.T) {
	ps := []policyconfig.Price{{Model: "claude-haiku-4-5*"}, {Model: "claude-sonnet-*"}}
	cases := []struct {
		allow, want []string
	}{
		{[]string{"claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-*"}, nil},
		{[]string{"claude-haiku-*"}, []string{"claude-haiku-*"}},
		{[]string{"claude-*", "claude-sonnet-4*"}, []string{"claude-*"}},
		{[]string{"claude-opus-4-5"}, []string{"claude-opus-4-5"}},
	}
	for _, c := range cases {
		if got := Unpriced(ps, c.allow); !slices.Equal(got, c.want) {
			t.Errorf("Unpriced(%v) = %v, want %v", c.allow, got, c.want)
		}
	}
	// With the built-in table, the families a tenant sample allows are priced; claude-* is not.
	if got := Unpriced(Builtin(), []string{"claude-haiku-*", "claude-sonnet-*", "claude-opus-*", "claude-*"}); !slices.Equal(got, []string{"claude-*"}) {
		t.Errorf("built-in: unpriced %v, want [claude-*]", got)
	}
}
