//go:build integration

package sharedlimits

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// timed is one response and when its request started.
type timed struct {
	start   time.Time
	sidecar int
	result
}

// load runs n clients against the fleet until stop is closed and returns every response.
func (f *fleet) load(t *testing.T, n int, stop <-chan struct{}) <-chan []timed {
	out := make(chan []timed, 1)
	go func() {
		var mu sync.Mutex
		var all []timed
		var wg sync.WaitGroup
		for c := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; ; i += n {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					r := f.messages(t, i, 20, i%3 == 0)
					mu.Lock()
					all = append(all, timed{start, i % len(f.Sidecars), r})
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		out <- all
	}()
	return out
}

// TestFleetRedisOutage stops Redis while 40 clients are running and starts it again, without touching the
// sidecars: FailClosed answers 503 with a clear message (and nothing about Redis) for as long as Redis is
// down; FailOpen keeps admitting and counts locally, so each sidecar enforces the limit on its own; both
// return to the shared counters once Redis answers again, with one log line per outage and sidecar.
func TestFleetRedisOutage(t *testing.T) {
	const localLimit = 25
	for _, mode := range []string{"FailClosed", "FailOpen"} {
		t.Run(mode, func(t *testing.T) {
			f := newFleet(t, fleetSize, policy(mode, `  rules:
  - {name: rpd, key: Namespace, window: Day, requests: 25}
`))
			// Phase 1: Redis up, shared counting.
			for i := range 4 {
				if r := f.messages(t, i, 20, false); r.Status != 200 {
					t.Fatalf("before the outage: %d %s", r.Status, r.Body)
				}
			}
			if r, _ := f.counter(t, "cg:{team-a}:*rpd*"); r != 4 {
				t.Fatalf("Redis counted %d, want 4", r)
			}

			// Phase 2: Redis stops in the middle of the load.
			stop := make(chan struct{})
			results := f.load(t, 40, stop)
			time.Sleep(150 * time.Millisecond)
			f.Redis.Stop()
			stopped := time.Now() // the process has exited: no later request can reach it
			time.Sleep(700 * time.Millisecond)
			close(stop)
			var before, during []timed
			for _, r := range <-results {
				if r.start.Before(stopped) {
					before = append(before, r)
				} else {
					during = append(during, r)
				}
			}
			if len(before) == 0 || len(during) < 40 {
				t.Fatalf("%d requests before the stop, %d after: the load did not straddle the outage", len(before), len(during))
			}
			admitted := map[int]int{} // FailOpen: 200s per sidecar during the outage
			for _, r := range during {
				switch {
				case mode == "FailClosed":
					if r.Status != 503 || !strings.Contains(r.Body, "the rate limiter is unavailable") || r.Header.Get("retry-after") != "1" {
						t.Fatalf("FailClosed during the outage: %d %v %s", r.Status, r.Header, r.Body)
					}
					for _, leak := range []string{"redis", "127.0.0.1", redisPassword} {
						if strings.Contains(strings.ToLower(r.Body), leak) {
							t.Fatalf("the 503 says %q: %s", leak, r.Body)
						}
					}
				case r.Status == 200:
					admitted[r.sidecar]++
				case r.Status != 429:
					t.Fatalf("FailOpen during the outage: %d %s", r.Status, r.Body)
				}
			}
			if mode == "FailOpen" {
				// Each sidecar counts locally from zero and enforces the limit on its own: none admits more
				// than the limit, the fleet together admits more than one limit's worth, and each ends at its
				// own 429 after counting down its own remaining requests.
				total := 0
				for i := range f.Sidecars {
					if admitted[i] > localLimit {
						t.Fatalf("sidecar %d admitted %d during the outage, over its local limit %d", i, admitted[i], localLimit)
					}
					total += admitted[i]
				}
				if total <= localLimit {
					t.Fatalf("the fleet admitted %d during the outage; counting locally, four sidecars should pass one limit (%d)", total, localLimit)
				}
				for i := range f.Sidecars {
					prev := -1
					for n := 0; ; n++ {
						r := f.messages(t, i, 20, false)
						rem, _ := strconv.Atoi(r.Header.Get(proxy.HeaderRequestsRemaining))
						if r.Status == 429 {
							if rem != 0 || !strings.Contains(r.Body, "policy/rpd") || (prev != -1 && prev != 0) {
								t.Fatalf("sidecar %d: 429 with remaining %d after %d: %s", i, rem, prev, r.Body)
							}
							break
						}
						if r.Status != 200 || (prev != -1 && rem != prev-1) || n > localLimit {
							t.Fatalf("sidecar %d: %d with remaining %d after %d", i, r.Status, rem, prev)
						}
						prev = rem
					}
					if m := f.scrape(i); !strings.Contains(m, `claude_guard_limiter_fail_open_total{op="reserve"}`) {
						t.Errorf("sidecar %d: no fail-open metric", i)
					}
				}
			}

			// Phase 3: Redis comes back (empty: no persistence); every sidecar returns to it by itself.
			f.Redis.Start(t)
			deadline := time.Now().Add(10 * time.Second)
			for i := range f.Sidecars {
				for {
					r := f.messages(t, i, 20, false)
					if r.Status == 200 && f.Sidecars[i].Limiter.Up() {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("sidecar %d did not recover: %d %s", i, r.Status, r.Body)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			// Shared again: the fleet admits exactly what is left of the limit in the new Redis.
			n, _ := f.counter(t, "cg:{team-a}:*rpd*")
			for i := 0; i < int(localLimit-n); i++ {
				if r := f.messages(t, i, 20, false); r.Status != 200 {
					t.Fatalf("after recovery, request %d of %d left: %d %s", i, localLimit-n, r.Status, r.Body)
				}
			}
			for i := range f.Sidecars {
				if r := f.messages(t, i, 20, false); r.Status != 429 {
					t.Fatalf("sidecar %d after the shared limit: %d", i, r.Status)
				}
				logs := f.Sidecars[i].Logs.String()
				if strings.Count(logs, "backend is unavailable") != 1 || strings.Count(logs, "reachable again") != 1 {
					t.Errorf("sidecar %d: want one outage and one recovery line:\n%s", i, logs)
				}
			}
		})
	}
}
