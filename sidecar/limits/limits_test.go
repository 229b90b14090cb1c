package limits

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

func rules(t *testing.T, ls []policyconfig.LimitRule, bs []policyconfig.Budget, ps []policyconfig.Price) *Rules {
	t.Helper()
	rs, err := Compile(&policyconfig.Config{Limits: policyconfig.Limits{Rules: ls}, Budgets: bs, Prices: ps})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func fixedClock(m *Memory, t time.Time) *time.Time {
	now := t
	m.now = func() time.Time { return now }
	return &now
}

func TestReserveSettleRefund(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(rules(t, []policyconfig.LimitRule{
		{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 3},
		{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1000, TokenType: "Total"},
	}, nil, nil))
	now := fixedClock(m, time.Date(2026, 1, 1, 10, 0, 15, 0, time.UTC))
	w := Keys{Workload: "a"}

	// 1: reserves 100 + 500 = 600 of 1000.
	r1, err := m.Reserve(ctx, Request{Keys: w, InputTokens: 100, OutputTokens: 500})
	if err != nil {
		t.Fatal(err)
	}
	// 2: 600 + 500 > 1000 → denied on tokens, with the window's remaining time.
	_, err = m.Reserve(ctx, Request{Keys: w, InputTokens: 0, OutputTokens: 500})
	var d *Denied
	if !errors.As(err, &d) || d.Rule != "policy/tpm" || d.What != "tokens" || d.RetryAfter != 45*time.Second || d.Never {
		t.Fatalf("second reserve: %v (%+v)", err, d)
	}
	// Settle the first with real usage 50+50: refunds 500, so a 500 request fits again.
	if err := m.Settle(ctx, r1, usage.Usage{InputTokens: 50, OutputTokens: 50}); err != nil {
		t.Fatal(err)
	}
	r2, err := m.Reserve(ctx, Request{Keys: w, OutputTokens: 500})
	if err != nil {
		t.Fatalf("after settle: %v", err)
	}
	// Refund puts the request and its tokens back.
	if err := m.Refund(ctx, r2); err != nil {
		t.Fatal(err)
	}
	// Settling twice changes nothing.
	if err := m.Settle(ctx, r1, usage.Usage{OutputTokens: 900}); err != nil {
		t.Fatal(err)
	}

	// Requests: 1 used (r1), r2 refunded → 2 more fit, the next is denied.
	for i := 0; i < 2; i++ {
		if _, err := m.Reserve(ctx, Request{Keys: w}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if _, err := m.Reserve(ctx, Request{Keys: w}); !errors.As(err, &d) || d.What != "requests" || d.Rule != "policy/rpm" {
		t.Fatalf("4th request: %v", err)
	}
	// Another workload has its own counters.
	if _, err := m.Reserve(ctx, Request{Keys: Keys{Workload: "b"}}); err != nil {
		t.Fatalf("other key: %v", err)
	}
	// A new window starts fresh; a request bigger than the limit can never pass.
	*now = now.Add(time.Minute)
	if _, err := m.Reserve(ctx, Request{Keys: w, OutputTokens: 1001}); !errors.As(err, &d) || !d.Never {
		t.Fatalf("oversized request: %v", err)
	}
	if _, err := m.Reserve(ctx, Request{Keys: w, OutputTokens: 1000}); err != nil {
		t.Fatalf("new window: %v", err)
	}
}

func TestTokenTypes(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		typ     string
		u       usage.Usage
		want    int64
		reserve Request
	}{
		{"Input", usage.Usage{InputTokens: 10, CacheReadInputTokens: 5, CacheCreationInputTokens: 1, OutputTokens: 100}, 16, Request{InputTokens: 20, OutputTokens: 100}},
		{"Output", usage.Usage{InputTokens: 10, OutputTokens: 7}, 7, Request{InputTokens: 20, OutputTokens: 100}},
		{"Total", usage.Usage{InputTokens: 10, OutputTokens: 7, CacheReadInputTokens: 3}, 20, Request{InputTokens: 20, OutputTokens: 100}},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			m := NewMemory(rules(t, []policyconfig.LimitRule{{Name: "t", Key: "Namespace", Window: "Hour", Tokens: 1000, TokenType: c.typ}}, nil, nil))
			r, err := m.Reserve(ctx, c.reserve)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Settle(ctx, r, c.u); err != nil {
				t.Fatal(err)
			}
			for _, b := range m.buckets {
				if b.amount != c.want {
					t.Fatalf("settled %d, want %d", b.amount, c.want)
				}
			}
		})
	}
}

func TestBudgetsAreSoftCaps(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(rules(t, nil,
		[]policyconfig.Budget{{Name: "usd", Key: "Namespace", Window: "Month", USD: "0.01", TokenType: "Total"}},
		[]policyconfig.Price{{Model: "claude-haiku-*", InputUSD: "1", OutputUSD: "5"}}))
	fixedClock(m, time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC))
	k := Keys{Namespace: "team-a"}
	// A huge max_tokens is admitted below the cap: budgets are not reserved against.
	r, err := m.Reserve(ctx, Request{Keys: k, Model: "claude-haiku-4-5", OutputTokens: 100000})
	if err != nil {
		t.Fatal(err)
	}
	// 1000 in × $1/M + 2000 out × $5/M = $0.011 ≥ $0.01.
	if err := m.Settle(ctx, r, usage.Usage{InputTokens: 1000, OutputTokens: 2000}); err != nil {
		t.Fatal(err)
	}
	var d *Denied
	if _, err := m.Reserve(ctx, Request{Keys: k, Model: "claude-haiku-4-5", OutputTokens: 1}); !errors.As(err, &d) || d.What != "budget" || d.Rule != "policy/budget-usd" {
		t.Fatalf("over budget: %v", err)
	}
	if want := 19 * 24 * time.Hour; d.RetryAfter != want {
		t.Errorf("RetryAfter = %v, want %v (month end)", d.RetryAfter, want)
	}
}

func TestForceReservesInShadow(t *testing.T) {
	m := NewMemory(rules(t, []policyconfig.LimitRule{{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 1}}, nil, nil))
	ctx := context.Background()
	if _, err := m.Reserve(ctx, Request{}); err != nil {
		t.Fatal(err)
	}
	res, err := m.Reserve(ctx, Request{Force: true})
	var d *Denied
	if res == nil || !errors.As(err, &d) {
		t.Fatalf("Force: res=%v err=%v; want both", res, err)
	}
}

func TestWindows(t *testing.T) {
	at := time.Date(2026, 3, 12, 13, 45, 30, 0, time.UTC) // a Thursday
	cases := []struct{ window, start, end string }{
		{"Minute", "2026-03-12T13:45:00Z", "2026-03-12T13:46:00Z"},
		{"Hour", "2026-03-12T13:00:00Z", "2026-03-12T14:00:00Z"},
		{"Day", "2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z"},
		{"Week", "2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z"},
		{"Month", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
	}
	for _, c := range cases {
		s, e := windowStart(c.window, at)
		if s.Format(time.RFC3339) != c.start || e.Format(time.RFC3339) != c.end {
			t.Errorf("%s: %s..%s, want %s..%s", c.window, s.Format(time.RFC3339), e.Format(time.RFC3339), c.start, c.end)
		}
	}
}

// TestConcurrentReserveSettle runs many parallel clients against one token limit and checks that the
// limit is never exceeded by settled plus reserved usage, and that exactly the capacity was admitted.
func TestConcurrentReserveSettle(t *testing.T) {
	const limit = 100_000
	m := NewMemory(rules(t, []policyconfig.LimitRule{
		{Name: "tpm", Key: "Workload", Window: "Day", Tokens: limit, TokenType: "Total"},
	}, nil, nil))
	ctx := context.Background()
	var admitted, usedTotal atomic.Int64
	var wg sync.WaitGroup
	check := func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, b := range m.buckets {
			if b.amount > limit {
				t.Errorf("bucket holds %d > limit %d", b.amount, limit)
			}
		}
	}
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				// Reserve 10 in + 90 out; really use 10 + 40 (settle refunds 50).
				r, err := m.Reserve(ctx, Request{Keys: Keys{Workload: "w"}, InputTokens: 10, OutputTokens: 90})
				if err != nil {
					var d *Denied
					if !errors.As(err, &d) {
						t.Error(err)
					}
					continue
				}
				admitted.Add(1)
				if i%7 == 0 {
					// e.g. the upstream was unreachable
					if err := m.Refund(ctx, r); err != nil {
						t.Error(err)
					}
					continue
				}
				usedTotal.Add(50)
				if err := m.Settle(ctx, r, usage.Usage{InputTokens: 10, OutputTokens: 40}); err != nil {
					t.Error(err)
				}
				if i%50 == 0 {
					check()
				}
			}
		}()
	}
	wg.Wait()
	check()
	var got int64
	for _, b := range m.buckets {
		got = b.amount
	}
	if got != usedTotal.Load() {
		t.Fatalf("bucket = %d, settled usage = %d", got, usedTotal.Load())
	}
	// Every settle freed 50, so the final state must be within one request of the limit: no capacity
	// was lost to lost updates.
	if got > limit || got < limit-100 {
		t.Fatalf("final usage %d, want within 100 of %d (admitted %d)", got, limit, admitted.Load())
	}
}
