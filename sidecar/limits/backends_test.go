package limits

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/testservers"
)

// testLimiter is a backend under test: the Limiter, a clock the test sets, and a look at one counter.
type testLimiter interface {
	Limiter
	Once(ctx context.Context, key string, ttl time.Duration) (bool, error)
	setNow(func() time.Time)
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

func (m memLimiter) counter(_ *testing.T, rs *Rules, i int, k Keys, at time.Time) (int64, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ru := &rs.rules[i]
	b := m.buckets[bucketKey{ru.id, ru.key + "=" + k.get(ru.key)}]
	if start, _ := windowStart(ru.window, at); b == nil || !b.window.Equal(start) {
		return 0, 0
	}
	return b.requests, b.amount
}

type redisLimiter struct {
	*Redis
	c *redis.Client
}

func (r redisLimiter) setNow(f func() time.Time) { r.now = f }

func (r redisLimiter) counter(t *testing.T, rs *Rules, i int, k Keys, at time.Time) (int64, int64) {
	t.Helper()
	ru := &rs.rules[i]
	start, _ := windowStart(ru.window, at)
	v, err := r.c.HMGet(t.Context(), rs.bucketKey(ru, k, start), "r", "a").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := func(x any) int64 {
		s, _ := x.(string)
		i, _ := strconv.ParseInt(s, 10, 64)
		return i
	}
	return n(v[0]), n(v[1])
}

// backends returns the Memory backend and a Redis backend on a redis-server started for this test (each
// Redis limiter starts from an empty database).
func backends(t *testing.T) []backend {
	var (
		once sync.Once
		srv  *testservers.Redis
	)
	return []backend{
		{name: "Memory", new: func(_ *testing.T, rs *Rules) testLimiter { return memLimiter{NewMemory(rs)} }},
		{name: "Redis", new: func(st *testing.T, rs *Rules) testLimiter {
			once.Do(func() { srv = testservers.StartRedis(t, testservers.RedisOptions{}) })
			c := srv.Client(st)
			if err := c.FlushAll(st.Context()).Err(); err != nil {
				st.Fatal(err)
			}
			return redisLimiter{newRedis(st, srv, rs, RedisOptions{}), c}
		}},
	}
}

// newRedis returns a Redis limiter on srv, closed when the test ends.
func newRedis(t testing.TB, srv *testservers.Redis, rs *Rules, o RedisOptions) *Redis {
	t.Helper()
	o.URL, o.Rules, o.TLS = srv.URL, rs, &tls.Config{RootCAs: srv.RootCAs}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout == 0 {
		// The default 200 ms is for production; a loaded test machine (-race, parallel packages) can take
		// longer to dial and handshake, and these tests are not about timing.
		o.Timeout = 2 * time.Second
	}
	l, err := NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
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
