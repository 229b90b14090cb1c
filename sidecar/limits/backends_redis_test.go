//go:build integration

package limits

import (
	"context"
	"crypto/tls"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

type redisLimiter struct {
	*Redis
	c redis.Cmdable
}

func (r redisLimiter) setNow(f func() time.Time) { r.now = f }
func (redisLimiter) serverClock() bool           { return true }

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

func init() { moreBackends = append(moreBackends, redisBackend, redisClusterBackend) }

// redisBackend is a Redis backend on a redis-server started for this test (each Redis limiter starts
// from an empty database).
func redisBackend(t *testing.T) backend {
	var (
		once sync.Once
		srv  *testservers.Redis
	)
	return backend{name: "Redis", new: func(st *testing.T, rs *Rules) testLimiter {
		once.Do(func() { srv = testservers.StartRedis(t, testservers.RedisOptions{}) })
		c := srv.Client(st)
		if err := c.FlushAll(st.Context()).Err(); err != nil {
			st.Fatal(err)
		}
		return redisLimiter{newRedis(st, srv, rs, RedisOptions{}), c}
	}}
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

// redisClusterBackend is a Redis backend on a 3-primary Redis Cluster started for this test: every
// rule's counters of one namespace share a hash slot, so each Reserve is still one FCALL on one
// primary.
func redisClusterBackend(t *testing.T) backend {
	var (
		once sync.Once
		srv  *testservers.RedisCluster
	)
	return backend{name: "RedisCluster", new: func(st *testing.T, rs *Rules) testLimiter {
		once.Do(func() { srv = testservers.StartRedisCluster(t, testservers.RedisClusterOptions{}) })
		c := srv.Client(st)
		if err := c.ForEachMaster(st.Context(), func(ctx context.Context, n *redis.Client) error {
			return n.FlushAll(ctx).Err()
		}); err != nil {
			st.Fatal(err)
		}
		l, err := NewRedis(RedisOptions{URL: srv.URL, Rules: rs, Log: slog.New(slog.DiscardHandler), Timeout: 2 * time.Second})
		if err != nil {
			st.Fatal(err)
		}
		st.Cleanup(func() { _ = l.Close() })
		return redisLimiter{l, c}
	}}
}
