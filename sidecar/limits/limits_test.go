package limits

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// The tests in this file run every case against both backends: Memory and Redis must behave the same.

func TestReserveSettleRefund(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		rs := rules(t, []policyconfig.LimitRule{
			{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 3},
			{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1000, TokenType: "Total"},
		}, nil, nil)
		m := b.new(t, rs)
		now := fixedClock(m, time.Date(2026, 1, 1, 10, 0, 15, 0, time.UTC))
		w := Keys{Workload: "a"}

		// 1: reserves 100 + 500 = 600 of 1000.
		r1, err := m.Reserve(ctx, Request{Keys: w, InputTokens: 100, OutputTokens: 500})
		if err != nil {
			t.Fatal(err)
		}
		// 2: 600 + 500 > 1000 → denied on tokens, with the window's remaining time.
		_, err = m.Reserve(ctx, Request{Keys: w, InputTokens: 0, OutputTokens: 500})
		if d := asDenied(err); d == nil || d.Rule != "policy/tpm" || d.What != "tokens" || d.RetryAfter != 45*time.Second || d.Never {
			t.Fatalf("second reserve: %v (%+v)", err, d)
		}
		// Settle the first with real usage 50+50: refunds 500, so a 500 request fits again.
		if err := m.Settle(ctx, r1, usage.Usage{InputTokens: 50, OutputTokens: 50}); err != nil {
			t.Fatal(err)
		}
		if r, a := m.counter(t, rs, 1, w, *now); r != 0 || a != 100 {
			t.Fatalf("tpm counter after settle = %d requests, %d tokens; want 0, 100", r, a)
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
		if r, a := m.counter(t, rs, 0, w, *now); r != 1 || a != 0 {
			t.Fatalf("rpm counter = %d requests, %d tokens; want 1, 0", r, a)
		}
		if _, a := m.counter(t, rs, 1, w, *now); a != 100 {
			t.Fatalf("tpm counter = %d tokens, want 100", a)
		}

		// Requests: 1 used (r1), r2 refunded → 2 more fit, the next is denied.
		for i := 0; i < 2; i++ {
			if _, err := m.Reserve(ctx, Request{Keys: w}); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		if _, err := m.Reserve(ctx, Request{Keys: w}); asDenied(err) == nil || asDenied(err).What != "requests" || asDenied(err).Rule != "policy/rpm" {
			t.Fatalf("4th request: %v", err)
		}
		// Another workload has its own counters.
		if _, err := m.Reserve(ctx, Request{Keys: Keys{Workload: "b"}}); err != nil {
			t.Fatalf("other key: %v", err)
		}
		// A new window starts fresh; a request bigger than the limit can never pass.
		*now = now.Add(time.Minute)
		if _, err := m.Reserve(ctx, Request{Keys: w, OutputTokens: 1001}); asDenied(err) == nil || !asDenied(err).Never {
			t.Fatalf("oversized request: %v", err)
		}
		if _, err := m.Reserve(ctx, Request{Keys: w, OutputTokens: 1000}); err != nil {
			t.Fatalf("new window: %v", err)
		}
	})
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
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, c := range cases {
			t.Run(c.typ, func(t *testing.T) {
				rs := rules(t, []policyconfig.LimitRule{{Name: "t", Key: "Namespace", Window: "Hour", Tokens: 1000, TokenType: c.typ}}, nil, nil)
				m := b.new(t, rs)
				now := fixedClock(m, time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC))
				r, err := m.Reserve(ctx, c.reserve)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Settle(ctx, r, c.u); err != nil {
					t.Fatal(err)
				}
				if _, got := m.counter(t, rs, 0, Keys{}, *now); got != c.want {
					t.Fatalf("settled %d, want %d", got, c.want)
				}
			})
		}
	})
}

func TestBudgetsAreSoftCaps(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, b backend) {
		t.Run("USD", func(t *testing.T) {
			rs := rules(t, nil,
				[]policyconfig.Budget{{Name: "usd", Key: "Namespace", Window: "Month", USD: "0.01", TokenType: "Total"}},
				[]policyconfig.Price{{Model: "claude-haiku-*", TokenPrices: policyconfig.TokenPrices{InputUSD: "1", OutputUSD: "5"}}})
			m := b.new(t, rs)
			now := fixedClock(m, time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC))
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
			if _, a := m.counter(t, rs, 0, k, *now); a != 11_000 {
				t.Fatalf("budget counter = %d micro-USD, want 11000", a)
			}
			_, err = m.Reserve(ctx, Request{Keys: k, Model: "claude-haiku-4-5", OutputTokens: 1})
			d := asDenied(err)
			if d == nil || d.What != "budget" || d.Rule != "policy/budget-usd" || d.Never {
				t.Fatalf("over budget: %v", err)
			}
			if want := 19 * 24 * time.Hour; d.RetryAfter != want {
				t.Errorf("RetryAfter = %v, want %v (month end)", d.RetryAfter, want)
			}
			// The next month starts a new budget.
			*now = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			if _, err := m.Reserve(ctx, Request{Keys: k, Model: "claude-haiku-4-5", OutputTokens: 1}); err != nil {
				t.Fatalf("next month: %v", err)
			}
		})
		t.Run("tokens", func(t *testing.T) {
			rs := rules(t, nil, []policyconfig.Budget{{Name: "out", Key: "EndUser", Window: "Week", Tokens: 100, TokenType: "Output"}}, nil)
			m := b.new(t, rs)
			fixedClock(m, time.Date(2026, 3, 12, 13, 0, 0, 0, time.UTC)) // a Thursday
			alice, bob := Keys{EndUser: "alice"}, Keys{EndUser: "bob"}
			// Two requests admitted at 60 and at 0 used: the second finishes at 120 > 100 (soft cap).
			r1, err := m.Reserve(ctx, Request{Keys: alice, OutputTokens: 4096})
			if err != nil {
				t.Fatal(err)
			}
			r2, err := m.Reserve(ctx, Request{Keys: alice, OutputTokens: 4096})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []*Reservation{r1, r2} {
				if err := m.Settle(ctx, r, usage.Usage{InputTokens: 500, OutputTokens: 60}); err != nil {
					t.Fatal(err)
				}
			}
			_, err = m.Reserve(ctx, Request{Keys: alice, OutputTokens: 1})
			if d := asDenied(err); d == nil || d.What != "budget" || d.RetryAfter != 4*24*time.Hour-13*time.Hour {
				t.Fatalf("alice over budget: %v, want a budget denial until Monday 00:00", err)
			}
			if _, err := m.Reserve(ctx, Request{Keys: bob, OutputTokens: 1}); err != nil {
				t.Fatalf("bob has his own budget: %v", err)
			}
		})
	})
}

func TestForceReservesInShadow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		rs := rules(t, []policyconfig.LimitRule{{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 1}}, nil, nil)
		m := b.new(t, rs)
		now := fixedClock(m, time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC))
		ctx := context.Background()
		if _, err := m.Reserve(ctx, Request{}); err != nil {
			t.Fatal(err)
		}
		res, err := m.Reserve(ctx, Request{Force: true})
		if err != nil || res.Exceeded() == nil || res.Exceeded().Rule != "policy/rpm" {
			t.Fatalf("Force: res=%v err=%v; want a reservation that exceeded policy/rpm", res, err)
		}
		// The forced request was counted (shadow mode still counts), and refunding it gives it back.
		if r, _ := m.counter(t, rs, 0, Keys{}, *now); r != 2 {
			t.Fatalf("requests counted = %d, want 2", r)
		}
		if err := m.Refund(ctx, res); err != nil {
			t.Fatal(err)
		}
		if r, _ := m.counter(t, rs, 0, Keys{}, *now); r != 1 {
			t.Fatalf("requests counted after refund = %d, want 1", r)
		}
	})
}

// TestSettleAfterWindowEnds: a reservation that outlives its window is settled (or refunded) against
// nothing: the next window's counter is not touched.
func TestSettleAfterWindowEnds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		rs := rules(t, []policyconfig.LimitRule{{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1000, Requests: 10}}, nil, nil)
		m := b.new(t, rs)
		now := fixedClock(m, time.Date(2026, 1, 1, 10, 0, 59, 0, time.UTC))
		reserve := func(tokens int64) *Reservation {
			t.Helper()
			r, err := m.Reserve(ctx, Request{InputTokens: tokens})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		expect := func(requests, amount int64) {
			t.Helper()
			if r, a := m.counter(t, rs, 0, Keys{}, *now); r != requests || a != amount {
				t.Fatalf("window of %s = %d requests, %d tokens; want %d, %d", now.Format(time.TimeOnly), r, a, requests, amount)
			}
		}
		old := reserve(500)
		*now = now.Add(2 * time.Second)
		reserve(100)
		if err := m.Settle(ctx, old, usage.Usage{InputTokens: 2}); err != nil {
			t.Fatal(err)
		}
		expect(1, 100)
		late := reserve(5)
		expect(2, 105)
		*now = now.Add(time.Minute)
		reserve(7)
		if err := m.Refund(ctx, late); err != nil {
			t.Fatal(err)
		}
		expect(1, 7)
	})
}

func TestStatus(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		rs := rules(t, []policyconfig.LimitRule{
			{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 3},
			{Name: "rph", Key: "Workload", Window: "Hour", Requests: 100},
			{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1000},
			{Name: "tpd", Key: "Namespace", Window: "Day", Tokens: 1200},
		}, []policyconfig.Budget{{Name: "day", Key: "Namespace", Window: "Day", Tokens: 1_000_000}}, nil)
		m := b.new(t, rs)
		at := time.Date(2026, 1, 1, 10, 30, 15, 0, time.UTC)
		fixedClock(m, at)
		minuteEnd, dayEnd := time.Date(2026, 1, 1, 10, 31, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)

		r1, err := m.Reserve(ctx, Request{InputTokens: 100, OutputTokens: 100})
		if err != nil {
			t.Fatal(err)
		}
		want := Status{
			Requests: Quota{Rule: "policy/rpm", Limit: 3, Remaining: 2, Reset: minuteEnd},
			Tokens:   Quota{Rule: "policy/tpm", Limit: 1000, Remaining: 800, Reset: minuteEnd},
		}
		if got := r1.Status(); got != want {
			t.Fatalf("first status\n got %+v\nwant %+v", got, want)
		}
		// 600 more: tpm has 200 left, tpd 400 → tpm still constrains most.
		r2, err := m.Reserve(ctx, Request{InputTokens: 100, OutputTokens: 500})
		if err != nil {
			t.Fatal(err)
		}
		want.Requests.Remaining, want.Tokens.Remaining = 1, 200
		if got := r2.Status(); got != want {
			t.Fatalf("second status\n got %+v\nwant %+v", got, want)
		}
		// Settle both at 50 tokens: tpm and tpd have used 100; a third request of 900 leaves tpm at 0
		// and tpd at 200 (budgets never show in the status).
		for _, r := range []*Reservation{r1, r2} {
			if err := m.Settle(ctx, r, usage.Usage{InputTokens: 25, OutputTokens: 25}); err != nil {
				t.Fatal(err)
			}
		}
		r3, err := m.Reserve(ctx, Request{InputTokens: 450, OutputTokens: 450})
		if err != nil {
			t.Fatal(err)
		}
		want.Requests.Remaining, want.Tokens.Remaining = 0, 0
		if got := r3.Status(); got != want {
			t.Fatalf("third status\n got %+v\nwant %+v", got, want)
		}
		// Next minute: tpm is empty again (1000 left), tpd has 200 left and ends at midnight: 300 more
		// are refused by tpd.
		fixedClock(m, minuteEnd.Add(time.Second))
		_, err = m.Reserve(ctx, Request{InputTokens: 150, OutputTokens: 150})
		d := asDenied(err)
		if d == nil || d.Rule != "policy/tpd" {
			t.Fatalf("reserve over tpd: %v", err)
		}
		want = Status{
			Requests: Quota{Rule: "policy/rpm", Limit: 3, Remaining: 3, Reset: minuteEnd.Add(time.Minute)},
			Tokens:   Quota{Rule: "policy/tpd", Limit: 1200, Remaining: 200, Reset: dayEnd},
		}
		if d.Status != want {
			t.Fatalf("denied status (nothing taken)\n got %+v\nwant %+v", d.Status, want)
		}
		if (*Reservation)(nil).Status() != (Status{}) {
			t.Fatal("a nil reservation must have an empty status")
		}
	})
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

// TestEveryWindowCounts reserves in each window kind on both backends and checks the counter of the
// window is the one charged, and the next window starts empty.
func TestEveryWindowCounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, c := range []struct {
			window string
			next   time.Duration
		}{{"Minute", time.Minute}, {"Hour", time.Hour}, {"Day", 24 * time.Hour}, {"Week", 7 * 24 * time.Hour}, {"Month", 31 * 24 * time.Hour}} {
			t.Run(c.window, func(t *testing.T) {
				ctx := context.Background()
				rs := rules(t, []policyconfig.LimitRule{{Name: "r", Key: "Workload", Window: c.window, Requests: 1}}, nil, nil)
				m := b.new(t, rs)
				now := fixedClock(m, time.Date(2026, 3, 12, 13, 45, 30, 0, time.UTC))
				if _, err := m.Reserve(ctx, Request{}); err != nil {
					t.Fatal(err)
				}
				if _, err := m.Reserve(ctx, Request{}); asDenied(err) == nil {
					t.Fatalf("second request in one %s: %v, want denied", c.window, err)
				}
				*now = now.Add(c.next)
				if _, err := m.Reserve(ctx, Request{}); err != nil {
					t.Fatalf("next %s: %v", c.window, err)
				}
			})
		}
	})
}

// TestConcurrentReserveSettle runs many parallel clients against one token limit and checks that the
// limit is never exceeded by settled plus reserved usage, and that exactly the capacity was admitted.
func TestConcurrentReserveSettle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		const limit = 100_000
		rs := rules(t, []policyconfig.LimitRule{
			{Name: "tpm", Key: "Workload", Window: "Day", Tokens: limit, TokenType: "Total"},
		}, nil, nil)
		m := b.new(t, rs)
		now := fixedClock(m, time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC))
		w := Keys{Workload: "w"}
		ctx := context.Background()
		var admitted, usedTotal atomic.Int64
		var wg sync.WaitGroup
		check := func() {
			if _, a := m.counter(t, rs, 0, w, *now); a > limit {
				t.Errorf("counter holds %d > limit %d", a, limit)
			}
		}
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					// Reserve 10 in + 90 out; really use 10 + 40 (settle refunds 50).
					r, err := m.Reserve(ctx, Request{Keys: w, InputTokens: 10, OutputTokens: 90})
					if err != nil {
						if asDenied(err) == nil {
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
		_, got := m.counter(t, rs, 0, w, *now)
		if got != usedTotal.Load() {
			t.Fatalf("counter = %d, settled usage = %d", got, usedTotal.Load())
		}
		// Every settle freed 50, so the final state must be within one request of the limit: no capacity
		// was lost to lost updates.
		if got > limit || got < limit-100 {
			t.Fatalf("final usage %d, want within 100 of %d (admitted %d)", got, limit, admitted.Load())
		}
	})
}

func TestOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		m := b.new(t, rules(t, nil, nil, nil))
		const ttl = 300 * time.Millisecond
		for _, c := range []struct {
			key   string
			first bool
		}{{"iss|jti-1", true}, {"iss|jti-1", false}, {"iss|jti-2", true}, {"other-iss|jti-1", true}, {"iss|jti-2", false}} {
			first, err := m.Once(ctx, c.key, ttl)
			if err != nil || first != c.first {
				t.Fatalf("Once(%q) = %v, %v; want %v", c.key, first, err, c.first)
			}
		}
		// After the TTL the key is forgotten (real time: Redis expires keys by its own clock).
		m.setNow(func() time.Time { return time.Now().Add(ttl) })
		if m.serverClock() {
			time.Sleep(ttl + 50*time.Millisecond)
		}
		if first, err := m.Once(ctx, "iss|jti-1", ttl); err != nil || !first {
			t.Fatalf("after the TTL: %v, %v; want first again", first, err)
		}
		if _, err := m.Once(ctx, "k", 0); err == nil {
			t.Fatal("a zero TTL was accepted")
		}
	})
}

// TestMemoryOnceIsBounded: expired keys are swept, and a store full of live keys refuses rather than
// forgetting one early.
func TestMemoryOnceIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := onceStore{max: 3000, now: func() time.Time { return now }}
	key := func(i int) string { return "jti-" + time.Duration(i).String() }
	for i := range 3000 {
		if first, err := s.once(key(i), time.Minute); err != nil || !first {
			t.Fatalf("key %d: %v %v", i, first, err)
		}
	}
	if _, err := s.once("one-more", time.Minute); !errors.Is(err, ErrReplayStoreFull) {
		t.Fatalf("full store: %v, want ErrReplayStoreFull", err)
	}
	if first, _ := s.once(key(7), time.Minute); first {
		t.Fatal("a live key was forgotten")
	}
	now = now.Add(time.Minute)
	if first, err := s.once("one-more", time.Minute); err != nil || !first {
		t.Fatalf("after expiry: %v %v", first, err)
	}
	if len(s.seen) != 1 {
		t.Fatalf("%d keys held after the sweep, want 1", len(s.seen))
	}
}

// TestCompileBoundsTheRules: a config with more rules than one Redis function call takes is refused
// when compiled, not at its first request.
func TestCompileBoundsTheRules(t *testing.T) {
	ls := make([]policyconfig.LimitRule, redislib.MaxKeys+1)
	for i := range ls {
		ls[i] = policyconfig.LimitRule{Name: fmt.Sprint("r", i), Key: "Workload", Window: "Minute", Requests: 1}
	}
	if _, err := Compile(&policyconfig.Config{Limits: policyconfig.Limits{Rules: ls[:redislib.MaxKeys]}}); err != nil {
		t.Fatalf("%d rules: %v", redislib.MaxKeys, err)
	}
	if _, err := Compile(&policyconfig.Config{Limits: policyconfig.Limits{Rules: ls}}); err == nil || !strings.Contains(err.Error(), "at most 128") {
		t.Fatalf("%d rules: %v, want an error", len(ls), err)
	}
}

// TestHugeAmountsSaturate: a max_tokens near 2^63 (the body scanner accepts any int64) must not wrap
// a reservation negative and let the request through: it is refused as one that can never fit, and
// counters stay within [0, 2^62] whatever a reservation or a usage report says.
func TestHugeAmountsSaturate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		rs := rules(t, []policyconfig.LimitRule{
			{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1000, TokenType: "Total"},
		}, []policyconfig.Budget{{Name: "usd", Key: "Workload", Window: "Day", USD: "10"}},
			[]policyconfig.Price{{Model: "m", TokenPrices: policyconfig.TokenPrices{InputUSD: "3", OutputUSD: "15", CacheReadUSD: "0.3", CacheWrite5mUSD: "3.75"}}})
		m := b.new(t, rs)
		now := fixedClock(m, time.Date(2026, 1, 1, 10, 0, 15, 0, time.UTC))
		w := Keys{Workload: "a"}
		for _, out := range []int64{math.MaxInt64, math.MaxInt64 - 9, 1 << 62, 1<<62 + 1} {
			_, err := m.Reserve(ctx, Request{Keys: w, Model: "m", InputTokens: 10, OutputTokens: out})
			if d := asDenied(err); d == nil || d.What != "tokens" || !d.Never {
				t.Fatalf("max_tokens %d: %v, want a tokens denial that can never fit", out, err)
			}
		}
		if _, a := m.counter(t, rs, 0, w, *now); a != 0 {
			t.Fatalf("counter after refused huge reservations = %d, want 0", a)
		}
		// Forced (shadow mode) through anyway: the hold saturates, it does not wrap.
		res, err := m.Reserve(ctx, Request{Keys: w, Model: "m", InputTokens: 10, OutputTokens: math.MaxInt64, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, a := m.counter(t, rs, 0, w, *now); a != maxAmount {
			t.Fatalf("counter after a forced huge hold = %d, want the bound %d", a, maxAmount)
		}
		huge := usage.Usage{InputTokens: math.MaxInt64, OutputTokens: math.MaxInt64, CacheReadInputTokens: math.MaxInt64, CacheCreationInputTokens: math.MaxInt64}
		if err := m.Settle(ctx, res, huge); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if _, a := m.counter(t, rs, i, w, *now); a < 0 || a > maxAmount {
				t.Fatalf("rule %d counter after settling huge usage = %d, outside [0, 2^62]", i, a)
			}
		}
		// The day's USD budget is spent (saturated), not wrapped back to room.
		if _, err := m.Reserve(ctx, Request{Keys: w, Model: "m", InputTokens: 1, OutputTokens: 1}); asDenied(err) == nil {
			t.Fatalf("after saturated spend: %v, want a denial", err)
		}
	})
}

func TestAmountArithmetic(t *testing.T) {
	cases := []struct {
		name string
		got  int64
		want int64
	}{
		{"sum", addAmounts(1, 2, 3), 6},
		{"negative terms count as 0", addAmounts(-5, 7), 7},
		{"saturates", addAmounts(maxAmount, 1), maxAmount},
		{"saturates at the bound from int64 max", addAmounts(math.MaxInt64, math.MaxInt64), maxAmount},
		{"cost", costMicroUSD([2]int64{1_000_000, 3_000_000}, [2]int64{500_000, 15_000_000}), 3_000_000 + 7_500_000},
		{"cost rounds the sum down once", costMicroUSD([2]int64{1, 400_000}, [2]int64{1, 700_000}), 1},
		{"cost saturates", costMicroUSD([2]int64{math.MaxInt64, math.MaxInt64}), maxAmount},
		{"cost of a huge count at a small price", costMicroUSD([2]int64{1 << 62, 1}), (1 << 62) / 1_000_000},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestHardBudgets: a Hard budget holds each request's maximum cost (its body length in bytes as input
// and its max_tokens as output, at the dearest prices), so requests in flight never spend past it
// together, and settles to the real cost. Without the hold (a Soft budget), the same requests are all
// admitted while nothing is settled.
func TestHardBudgets(t *testing.T) {
	ctx := context.Background()
	haiku := []policyconfig.Price{{Model: "claude-haiku-*", TokenPrices: policyconfig.TokenPrices{InputUSD: "1", OutputUSD: "5"},
		Priority: &policyconfig.TokenPrices{OutputUSD: "10"}}}
	forEachBackend(t, func(t *testing.T, b backend) {
		t.Run("USD", func(t *testing.T) {
			rs := rules(t, nil, []policyconfig.Budget{{Name: "usd", Key: "Namespace", Window: "Day", USD: "0.05",
				TokenType: "Total", Enforcement: policyconfig.EnforcementHard}}, haiku)
			m := b.new(t, rs)
			now := fixedClock(m, time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC))
			k := Keys{Namespace: "team-a"}
			// 2000 bytes in at the dearest input-side price (1-hour cache writes, 2x $1) and 1000 out at
			// the priority tier's $10: $0.004 + $0.01 = $0.014 each. Three fit in $0.05, a fourth does not.
			req := Request{Keys: k, Model: "claude-haiku-4-5", InputTokens: 500, MaxInputTokens: 2000, OutputTokens: 1000}
			var held []*Reservation
			for i := range 3 {
				r, err := m.Reserve(ctx, req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				held = append(held, r)
			}
			if _, a := m.counter(t, rs, 0, k, *now); a != 42_000 {
				t.Fatalf("held %d micro-USD, want 42000", a)
			}
			_, err := m.Reserve(ctx, req)
			if d := asDenied(err); d == nil || d.What != "budget" || d.Rule != "policy/budget-usd" || d.Never || !d.Hard {
				t.Fatalf("fourth request in flight: %v, want a Hard budget denial that a retry can pass", err)
			}
			// Settling at the real cost (400 in, 100 out: $0.0009) frees the rest of the hold.
			for _, r := range held {
				if err := m.Settle(ctx, r, usage.Usage{InputTokens: 400, OutputTokens: 100}); err != nil {
					t.Fatal(err)
				}
			}
			if _, a := m.counter(t, rs, 0, k, *now); a != 2_700 {
				t.Fatalf("settled %d micro-USD, want 2700", a)
			}
			if r, err := m.Reserve(ctx, req); err != nil {
				t.Fatalf("after settling: %v", err)
			} else if err := m.Refund(ctx, r); err != nil {
				t.Fatal(err)
			}
			// A request whose maximum cost exceeds the whole budget can never be admitted.
			_, err = m.Reserve(ctx, Request{Keys: k, Model: "claude-haiku-4-5", MaxInputTokens: 10, OutputTokens: 10_000})
			if d := asDenied(err); d == nil || d.What != "budget" || !d.Never {
				t.Fatalf("max cost $0.10 > $0.05: %v, want a budget denial with Never", err)
			}
			// A call that costs nothing (count_tokens) passes a spent budget's check.
			if _, err := m.Reserve(ctx, Request{Keys: k, Model: "claude-haiku-4-5"}); err != nil {
				t.Fatalf("a call without tokens: %v", err)
			}
		})
		t.Run("tokens", func(t *testing.T) {
			for _, tc := range []struct {
				enforcement string
				admitted    int
			}{{policyconfig.EnforcementHard, 2}, {policyconfig.EnforcementSoft, 5}} {
				t.Run(tc.enforcement, func(t *testing.T) {
					rs := rules(t, nil, []policyconfig.Budget{{Name: "out", Key: "Workload", Window: "Day", Tokens: 1000,
						TokenType: "Output", Enforcement: tc.enforcement}}, nil)
					m := b.new(t, rs)
					fixedClock(m, time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC))
					admitted := 0
					for range 5 {
						if _, err := m.Reserve(ctx, Request{Keys: Keys{Workload: "w"}, InputTokens: 9, MaxInputTokens: 9000, OutputTokens: 400}); err == nil {
							admitted++
						} else if asDenied(err) == nil {
							t.Fatal(err)
						}
					}
					if admitted != tc.admitted {
						t.Fatalf("%d of 5 requests of max_tokens 400 in flight admitted under a %s output budget of 1000, want %d",
							admitted, tc.enforcement, tc.admitted)
					}
				})
			}
		})
	})
}

// TestPhases: a request's reservation split around its body. PhaseRequests holds one request against
// every rule but Session ones and no tokens; PhaseTokens then holds the tokens and the Session rules'
// request, never a second request; a spent budget refuses already in PhaseRequests; refunding both
// returns everything.
func TestPhases(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, b backend) {
		rs := rules(t, []policyconfig.LimitRule{
			{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 2, TokenType: "Total"},
			{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1000, TokenType: "Total"},
			{Name: "per-session", Key: "Session", Window: "Minute", Requests: 5, TokenType: "Total"},
		}, []policyconfig.Budget{{Name: "day", Key: "Workload", Window: "Day", Tokens: 500, TokenType: "Total", Enforcement: policyconfig.EnforcementSoft}}, nil)
		m := b.new(t, rs)
		now := fixedClock(m, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
		k := Keys{Workload: "w", Session: "s1"}
		counters := func() [4][2]int64 {
			var out [4][2]int64
			for i := range out {
				out[i][0], out[i][1] = m.counter(t, rs, i, k, *now)
			}
			return out
		}
		pre, err := m.Reserve(ctx, Request{Keys: Keys{Workload: "w"}, Phase: PhaseRequests})
		if err != nil {
			t.Fatal(err)
		}
		if got := counters(); got != [4][2]int64{{1, 0}, {0, 0}, {0, 0}, {0, 0}} {
			t.Fatalf("after PhaseRequests: %v, want one request on rpm only (tpm has no request part, the Session rule waits)", got)
		}
		post, err := m.Reserve(ctx, Request{Keys: k, InputTokens: 100, OutputTokens: 200, Phase: PhaseTokens})
		if err != nil {
			t.Fatal(err)
		}
		if got := counters(); got != [4][2]int64{{1, 0}, {0, 300}, {1, 0}, {0, 0}} {
			t.Fatalf("after PhaseTokens: %v, want rpm still 1, 300 tokens on tpm, the session's request", got)
		}
		if err := m.Settle(ctx, pre, usage.Usage{}); err != nil {
			t.Fatal(err)
		}
		if err := m.Settle(ctx, post, usage.Usage{InputTokens: 400, OutputTokens: 200}); err != nil {
			t.Fatal(err)
		}
		if got := counters(); got != [4][2]int64{{1, 0}, {0, 600}, {1, 0}, {0, 600}} {
			t.Fatalf("after settling: %v, want the usage counted once", got)
		}
		// The budget is spent (600 of 500): the next request is refused before its body is read.
		_, err = m.Reserve(ctx, Request{Keys: Keys{Workload: "w"}, Phase: PhaseRequests})
		if d := asDenied(err); d == nil || d.What != "budget" {
			t.Fatalf("PhaseRequests with the budget spent: %v, want a budget denial", err)
		}
		if got := counters(); got[0] != [2]int64{1, 0} {
			t.Fatalf("a refused PhaseRequests took %v", got[0])
		}
		// Refunds return each phase's own holds.
		rs2 := rules(t, []policyconfig.LimitRule{{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 1, TokenType: "Total"}}, nil, nil)
		m2 := b.new(t, rs2)
		now2 := fixedClock(m2, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
		pre2, err := m2.Reserve(ctx, Request{Keys: Keys{Workload: "w"}, Phase: PhaseRequests})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m2.Reserve(ctx, Request{Keys: Keys{Workload: "w"}, Phase: PhaseRequests}); asDenied(err) == nil || asDenied(err).What != "requests" {
			t.Fatalf("a second request over rpm 1: %v, want a requests denial before the body", err)
		}
		if err := m2.Refund(ctx, pre2); err != nil {
			t.Fatal(err)
		}
		if r, _ := m2.counter(t, rs2, 0, Keys{Workload: "w"}, *now2); r != 0 {
			t.Fatalf("after the refund rpm holds %d", r)
		}
	})
}

// TestRedisCallDeadlineFollowsTheURL: a call's deadline is DefaultRedisTimeout unless the URL sets
// longer go-redis timeouts, which would otherwise be cut short by it.
func TestRedisCallDeadlineFollowsTheURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want time.Duration
	}{
		{"redis://127.0.0.1:6379/0", DefaultRedisTimeout},
		{"redis://127.0.0.1:6379/0?read_timeout=2s&write_timeout=1s", 2 * time.Second},
		{"redis://127.0.0.1:6379/0?read_timeout=50ms", DefaultRedisTimeout},
	} {
		l, err := NewRedis(RedisOptions{URL: c.url, Rules: rules(t, nil, nil, nil)})
		if err != nil {
			t.Fatal(err)
		}
		if l.timeout != c.want {
			t.Errorf("%s: call deadline %v, want %v", c.url, l.timeout, c.want)
		}
		_ = l.Close()
	}
}
