//go:build integration

package sharedlimits

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

const (
	fleetSize = 4
	clients   = 200
)

// TestFleetAdmitsExactlyTheLimit: 200 concurrent clients spread over four sidecars, JSON and streams,
// against a shared request limit of N: exactly N are admitted, across all four, and the upstream sees
// exactly N.
func TestFleetAdmitsExactlyTheLimit(t *testing.T) {
	const limit, perClient = 150, 2
	f := newFleet(t, fleetSize, policy("FailClosed", `  rules:
  - {name: rpd, key: Namespace, window: Day, requests: 150}
  - {name: per-pod, key: Workload, window: Day, requests: 1000}
`))
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perClient {
				r := f.messages(t, c+i, 50, (c+i)%2 == 0)
				switch r.Status {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
					if !strings.Contains(r.Body, `policy/rpd`) {
						t.Errorf("429 names another rule: %s", r.Body)
					}
				default:
					t.Errorf("status %d: %s", r.Status, r.Body)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != limit || limited.Load() != clients*perClient-limit {
		t.Fatalf("admitted %d and limited %d across %d sidecars; want exactly %d and %d", ok.Load(), limited.Load(), fleetSize, limit, clients*perClient-limit)
	}
	if got := len(f.Fake.Requests()); got != limit {
		t.Fatalf("the upstream saw %d requests, want %d", got, limit)
	}
	if r, _ := f.counter(t, "cg:{team-a}:p:chat:limit:rpd:Day:Namespace=team-a:*"); r != limit {
		t.Fatalf("Redis counts %d requests, want %d", r, limit)
	}
	// Every sidecar took part.
	for i := range f.Sidecars {
		if !strings.Contains(f.scrape(i), `claude_guard_limiter_rejections_total{rule="policy/rpd"}`) {
			t.Errorf("sidecar %d never refused a request: the load did not reach it", i)
		}
	}
}

// TestFleetTokenLimitNeverExceeded: with a shared token limit, reserved plus settled usage never exceeds
// the limit while 200 clients run (sampled from Redis), and once done the counter holds exactly the real
// usage of the admitted requests: streamed responses settle with the usage read from their events.
func TestFleetTokenLimitNeverExceeded(t *testing.T) {
	const limit, maxTokens = 30_000, 200
	f := newFleet(t, fleetSize, policy("FailClosed", `  rules:
  - {name: tpd, key: Namespace, window: Day, tokens: 30000, tokenType: Total}
`))
	const key = "cg:{team-a}:p:chat:limit:tpd:Day:Namespace=team-a:*"
	samplePeak := f.samplePeak(t, key)
	var ok, limited, used atomic.Int64
	f.burst(t, maxTokens, func(stream bool) {
		ok.Add(1)
		in, out, cw, cr := fakeupstream.Usage(requestBody(maxTokens, stream), maxTokens)
		used.Add(in + out + cw + cr)
	}, func(string) { limited.Add(1) })
	peak := samplePeak()
	if peak > limit {
		t.Fatalf("reserved plus settled tokens reached %d > limit %d", peak, limit)
	}
	_, got := f.counter(t, key)
	if got != used.Load() {
		t.Fatalf("Redis holds %d tokens; the admitted requests really used %d (settles lost or doubled)", got, used.Load())
	}
	if ok.Load() == 0 || limited.Load() == 0 {
		t.Fatalf("admitted %d, limited %d: the load did not reach the limit", ok.Load(), limited.Load())
	}
	t.Logf("admitted %d, limited %d, peak reserved+used %d of %d, settled %d", ok.Load(), limited.Load(), peak, limit, got)
}

// microUSD is what usage costs at the fleet's prices ($1/M input, $5/M output, $1.25/M cache writes,
// $0.10/M cache reads), in whole micro-dollars as the limiter counts it.
func microUSD(in, out, cacheWrite, cacheRead int64) int64 {
	return (in*1_000_000 + out*5_000_000 + cacheWrite*1_250_000 + cacheRead*100_000) / 1_000_000
}

// burst sends 3 Messages requests of maxTokens from each of the clients at once, spread over the fleet,
// JSON and streams alternating, and calls admitted for each 200 and refused with the body of each 429;
// any other status fails the test.
func (f *fleet) burst(t *testing.T, maxTokens int, admitted func(stream bool), refused func(body string)) {
	t.Helper()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 {
				stream := (c+i)%2 == 0
				switch r := f.messages(t, c+i, maxTokens, stream); r.Status {
				case 200:
					admitted(stream)
				case 429:
					refused(r.Body)
				default:
					t.Errorf("status %d: %s", r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()
}

// requestBody is the body fleet.messages sends (the fake bills by its length).
func requestBody(maxTokens int, stream bool) []byte {
	return []byte(`{"model":"claude-haiku-4-5","max_tokens":` + strconv.Itoa(maxTokens) + `,"stream":` + strconv.FormatBool(stream) +
		`,"messages":[{"role":"user","content":"hello from client"}]}`)
}

// TestFleetBudgetsSettleStreamedUsage: token and USD budgets are charged the real usage of streamed
// responses, whichever sidecar served them, and refuse the first request after the cap is reached (soft
// cap: the request that crosses it is admitted).
func TestFleetBudgetsSettleStreamedUsage(t *testing.T) {
	in, out, cw, cr := fakeupstream.Usage(requestBody(100, true), 100)
	for _, c := range []struct {
		name, budget, key string
		cost              int64
		cap               int64
	}{
		{name: "tokens", budget: `{name: tokens, key: Namespace, window: Month, tokens: 500, tokenType: Total}`,
			key: "cg:{team-a}:p:chat:budget:tokens:Month:*", cost: in + out + cw + cr, cap: 500},
		{name: "USD", budget: `{name: usd, key: Namespace, window: Month, usd: "0.0005"}`,
			key: "cg:{team-a}:p:chat:budget:usd:Month:*", cost: microUSD(in, out, cw, cr), cap: 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFleet(t, fleetSize, policy("FailClosed", "budgets: ["+c.budget+"]\n"))
			var spent int64
			for i := 0; ; i++ {
				r := f.messages(t, i, 100, true)
				if spent >= c.cap {
					if r.Status != 429 || !strings.Contains(r.Body, "budget") {
						t.Fatalf("request %d at %d of %d: status %d %s, want a budget 429", i, spent, c.cap, r.Status, r.Body)
					}
					break
				}
				if r.Status != 200 || !strings.Contains(r.Body, "message_stop") {
					t.Fatalf("request %d at %d of %d: status %d %s", i, spent, c.cap, r.Status, r.Body)
				}
				spent += c.cost
				if _, got := f.counter(t, c.key); got != spent {
					t.Fatalf("after %d streams through sidecar %d the budget holds %d, want %d", i+1, i%fleetSize, got, spent)
				}
			}
			if spent < c.cap || spent >= c.cap+c.cost {
				t.Fatalf("spent %d: the cap %d must be crossed by exactly one request of %d", spent, c.cap, c.cost)
			}
		})
	}
}

// TestFleetRateLimitHeaders: the headers come from the shared counter: remaining goes down by one per
// request whichever sidecar serves it, and reset is the end of the window.
func TestFleetRateLimitHeaders(t *testing.T) {
	f := newFleet(t, fleetSize, policy("FailClosed", `  rules:
  - {name: rpm, key: Namespace, window: Minute, requests: 6}
  - {name: tpm, key: Namespace, window: Minute, tokens: 100000}
`))
	for {
		// Start at the beginning of a minute, so the six requests share one window.
		if s := time.Now().UTC().Second(); s < 50 {
			break
		}
		time.Sleep(time.Second)
	}
	before := time.Now().UTC()
	wantReset := before.Truncate(time.Minute).Add(time.Minute).Format(time.RFC3339)
	prevTokens := int64(1 << 62)
	for i := range 7 {
		r := f.messages(t, i, 100, i%2 == 1)
		want := 6 - (i + 1)
		if i == 6 {
			want = 0
			if r.Status != 429 {
				t.Fatalf("7th request: %d, want 429", r.Status)
			}
		} else if r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
		h := r.Header
		if h.Get(proxy.HeaderRequestsLimit) != "6" || h.Get(proxy.HeaderRequestsRemaining) != strconv.Itoa(want) {
			t.Fatalf("request %d via sidecar %d: requests limit %q remaining %q, want 6 and %d", i, i%fleetSize,
				h.Get(proxy.HeaderRequestsLimit), h.Get(proxy.HeaderRequestsRemaining), want)
		}
		for _, name := range []string{proxy.HeaderRequestsReset, proxy.HeaderTokensReset} {
			if h.Get(name) != wantReset {
				t.Fatalf("request %d: %s = %q, want the minute's end %s", i, name, h.Get(name), wantReset)
			}
		}
		tokens, err := strconv.ParseInt(h.Get(proxy.HeaderTokensRemaining), 10, 64)
		if err != nil || (r.Status == 200 && tokens >= prevTokens) {
			t.Fatalf("request %d: tokens remaining %q after %d", i, h.Get(proxy.HeaderTokensRemaining), prevTokens)
		}
		prevTokens = tokens
	}
}

// TestFleetHardBudgetNeverOvershoots: 200 clients through four sidecars spend a shared USD budget. A
// Hard budget's counter (spend plus the maximum cost of the requests in flight) never passes the cap,
// sampled from Redis throughout, and ends at exactly the real cost of the admitted requests; a Soft
// budget, under the same load, admits the requests in flight when the cap is reached and ends above it
// by at most their cost (docs/limits.md, "Budgets: Soft and Hard").
func TestFleetHardBudgetNeverOvershoots(t *testing.T) {
	const capMicroUSD, maxTokens = 20_000, 200
	costOf := func(stream bool) int64 {
		return microUSD(fakeupstream.Usage(requestBody(maxTokens, stream), maxTokens))
	}
	cost := max(costOf(false), costOf(true))
	for _, enforcement := range []string{policyconfig.EnforcementHard, policyconfig.EnforcementSoft} {
		t.Run(enforcement, func(t *testing.T) {
			f := newFleet(t, fleetSize, policy("FailClosed", `budgets:
- {name: usd, key: Namespace, window: Month, usd: "0.02", enforcement: `+enforcement+"}\n"))
			const key = "cg:{team-a}:p:chat:budget:usd:Month:*"
			peak := f.samplePeak(t, key)
			var ok, limited, used atomic.Int64
			f.burst(t, maxTokens, func(stream bool) {
				ok.Add(1)
				used.Add(costOf(stream))
			}, func(body string) {
				limited.Add(1)
				if !strings.Contains(body, "policy/budget-usd") {
					t.Errorf("429 names another rule: %s", body)
				}
			})
			top := peak()
			_, spent := f.counter(t, key)
			if spent != used.Load() {
				t.Fatalf("Redis holds %d micro-USD; the %d admitted requests cost %d", spent, ok.Load(), used.Load())
			}
			if limited.Load() == 0 {
				t.Fatalf("admitted all %d requests: the load did not reach the budget", ok.Load())
			}
			t.Logf("%s: admitted %d, refused %d, peak spend+held %d, spent %d of %d micro-USD (overshoot %d, %d requests' worth)",
				enforcement, ok.Load(), limited.Load(), top, spent, capMicroUSD, max(0, spent-capMicroUSD), max(0, spent-capMicroUSD)/cost)
			switch enforcement {
			case policyconfig.EnforcementHard:
				if top > capMicroUSD || spent > capMicroUSD {
					t.Fatalf("Hard budget: spend plus holds reached %d and spend %d, past the cap %d", top, spent, capMicroUSD)
				}
			case policyconfig.EnforcementSoft:
				// Soft: admitted while the settled spend is below the cap, so at most the clients' requests
				// in flight (one each) finish above it.
				if spent < capMicroUSD || spent >= capMicroUSD+clients*cost {
					t.Fatalf("Soft budget spent %d, want in [%d, %d)", spent, capMicroUSD, capMicroUSD+clients*cost)
				}
			}
		})
	}
}
