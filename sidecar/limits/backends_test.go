package limits

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// testLimiter is a backend under test: the Limiter, a clock the test sets, and a look at one counter.
type testLimiter interface {
	Limiter
	Once(ctx context.Context, key string, ttl time.Duration) (bool, error)
	setNow(func() time.Time)
	// serverClock reports whether keys expire by the server's own clock (Redis), not the one set.
	serverClock() bool
	// counter returns rule i's counters for keys k in the window containing at.
	counter(t *testing.T, rs *Rules, i int, k Keys, at time.Time) (requests, amount int64)
}

// backend makes fresh limiters of one kind.
type backend struct {
	name string
	new  func(t *testing.T, rs *Rules) testLimiter
}

type memLimiter struct{ *Memory }

func (m memLimiter) setNow(f func() time.Time) { m.now = f }
func (memLimiter) serverClock() bool           { return false }

func (m memLimiter) counter(_ *testing.T, rs *Rules, i int, k Keys, at time.Time) (int64, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ru := &rs.rules[i]
	b := m.buckets[bucketKey{ru.id, ru.key, k.get(ru.key)}]
	if start, _ := windowStart(ru.window, at); b == nil || !b.window.Equal(start) {
		return 0, 0
	}
	return b.requests, b.amount
}

// moreBackends adds backends that need a server (backends_redis_test.go, with the integration tag).
var moreBackends []func(t *testing.T) backend

// backends returns the Memory backend and, in the integration suite, a Redis backend.
func backends(t *testing.T) []backend {
	out := []backend{{name: "Memory", new: func(_ *testing.T, rs *Rules) testLimiter { return memLimiter{NewMemory(rs)} }}}
	for _, b := range moreBackends {
		out = append(out, b(t))
	}
	return out
}

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

func rules(t *testing.T, ls []policyconfig.LimitRule, bs []policyconfig.Budget, ps []policyconfig.Price) *Rules {
	t.Helper()
	return compile(t, &policyconfig.Config{Limits: policyconfig.Limits{Rules: ls}, Budgets: bs, Prices: ps})
}

func compile(t *testing.T, c *policyconfig.Config) *Rules {
	t.Helper()
	rs, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// fixedClock sets l's clock to t and returns it for the test to move.
func fixedClock(l testLimiter, t time.Time) *time.Time {
	now := t
	l.setNow(func() time.Time { return now })
	return &now
}

// asDenied returns err's *Denied, or nil.
func asDenied(err error) *Denied {
	var d *Denied
	if errors.As(err, &d) {
		return d
	}
	return nil
}

// replayStore is the end-user package's ReplayStore, which both backends must implement.
type replayStore interface {
	Once(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

var (
	_ replayStore = (*Memory)(nil)
	_ replayStore = (*Redis)(nil)
	_ Limiter     = (*Redis)(nil)
)
