package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
)

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		v    int64
		usd  bool
		want string
	}{
		{0, true, "$0.00"},
		{250_000, true, "$0.25"},
		{1_000_000, true, "$1.00"},
		{12_345_678, true, "$12.345678"},
		{1_500, true, "$0.0015"},
		{500_000_000, true, "$500.00"},
		{90_000, false, "90000"},
	} {
		if got := formatAmount(c.v, c.usd); got != c.want {
			t.Errorf("formatAmount(%d, %v) = %q, want %q", c.v, c.usd, got, c.want)
		}
	}
}

type fakeCounters map[string]int64

func (f fakeCounters) Amounts(_ context.Context, keys []string) ([]int64, error) {
	out := make([]int64, len(keys))
	for i, k := range keys {
		out[i] = f[k]
	}
	return out, nil
}

// TestSpendOfOrdersTightestFirst: entries are ordered by the share of the budget left, overspent
// budgets show nothing remaining, and budgets counted per caller are left out.
func TestSpendOfOrdersTightestFirst(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var refs []budgetRef
	counters := fakeCounters{}
	for _, b := range []struct {
		limit   v1alpha1.EffectiveLimit
		counted int64
	}{
		{v1alpha1.EffectiveLimit{Name: "roomy", Source: "policy", Key: "Namespace", Window: "Day", USD: "10"}, 1_000_000},
		{v1alpha1.EffectiveLimit{Name: "over", Source: "tenant", Key: "Namespace", Window: "Month", Tokens: 100}, 150},
		{v1alpha1.EffectiveLimit{Name: "half", Source: "policy", Key: "Namespace", Window: "Week", Tokens: 1000}, 500},
		{v1alpha1.EffectiveLimit{Name: "per-user", Source: "policy", Key: "EndUser", Window: "Day", Tokens: 1000}, 0},
	} {
		ref, ok := budgetRefFor("team-a", "chat", "acme", b.limit, now)
		if b.limit.Key != "Namespace" {
			if ok {
				t.Fatalf("a budget counted per %s has no one counter to show", b.limit.Key)
			}
			continue
		}
		counters[ref.key] = b.counted
		refs = append(refs, ref)
	}
	got, err := spendOf(context.Background(), counters, refs, now)
	if err != nil {
		t.Fatal(err)
	}
	want := [][3]string{{"over", "150", "0"}, {"half", "500", "500"}, {"roomy", "$1.00", "$9.00"}}
	if len(got) != len(want) {
		t.Fatalf("spend %+v, want %d entries", got, len(want))
	}
	for i, w := range want {
		if g := got[i]; g.Budget != w[0] || g.Spent != w[1] || g.Remaining != w[2] {
			t.Errorf("spend[%d] = %s spent %s remaining %s, want %v", i, g.Budget, g.Spent, g.Remaining, w)
		}
	}
	if got[0].ResetsAt.Time != time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) || got[1].ResetsAt.Time != time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC) {
		t.Errorf("resets at %v and %v, want the next month and the next Monday", got[0].ResetsAt, got[1].ResetsAt)
	}
}
