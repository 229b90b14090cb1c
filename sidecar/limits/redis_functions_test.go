//go:build integration

package limits

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// TestRedisWithoutTheLibrary: a Redis without claude-guard's function library (not loaded yet, or lost
// in a restart) is a backend failure: the failure mode applies, the outage is logged once and says what
// is missing, and the limiter recovers by itself once the library is loaded (by the manager; here, by
// the test). The limiter never loads code itself.
func TestRedisWithoutTheLibrary(t *testing.T) {
	for _, mode := range []string{policyconfig.FailClosed, policyconfig.FailOpen} {
		t.Run(mode, func(t *testing.T) {
			srv := testservers.StartRedis(t, testservers.RedisOptions{NoFunctions: true})
			ctx := context.Background()
			rs := compile(t, &policyconfig.Config{Limits: policyconfig.Limits{FailureMode: mode, Rules: []policyconfig.LimitRule{
				{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 100},
			}}})
			var logs logbuf.Buffer
			l := newRedis(t, srv, rs, RedisOptions{BreakerInterval: 50 * time.Millisecond, Log: slog.New(slog.NewJSONHandler(&logs, nil))})

			_, err := l.Reserve(ctx, Request{})
			switch mode {
			case policyconfig.FailClosed:
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "function library "+redislib.Library) {
					t.Fatalf("reserve without the library: %v, want ErrUnavailable naming the library", err)
				}
			case policyconfig.FailOpen:
				if err != nil {
					t.Fatalf("FailOpen reserve without the library: %v, want counted locally", err)
				}
			}
			if l.Up() {
				t.Fatal("Up without the library")
			}
			time.Sleep(60 * time.Millisecond) // the breaker lets the next call probe
			_, err = l.Once(ctx, "jti:a", time.Minute)
			if (mode == policyconfig.FailClosed) != errors.Is(err, ErrUnavailable) {
				t.Fatalf("once without the library: %v", err)
			}
			if libs := srv.Client(t).FunctionList(ctx, redis.FunctionListQuery{}).Val(); len(libs) != 0 {
				t.Fatalf("the limiter loaded a library: %v", libs)
			}

			if _, err := redislib.Ensure(ctx, srv.Client(t)); err != nil {
				t.Fatal(err)
			}
			if err := wait.Until(ctx, 5*time.Second, func() error {
				res, err := l.Reserve(ctx, Request{})
				if err == nil && res.local {
					return errors.New("still counted locally")
				}
				return err
			}); err != nil {
				t.Fatalf("no recovery once the library is loaded: %v", err)
			}
			out := logs.String()
			if strings.Count(out, "is unavailable") != 1 || !strings.Contains(out, "function library "+redislib.Library) ||
				strings.Count(out, "reachable again") != 1 {
				t.Fatalf("want one outage line naming the library and one recovery line:\n%s", out)
			}
		})
	}
}

// TestRedisReplayTTLIsBounded: a replay key of a token valid for years lives for redislib.MaxReplayTTL,
// the longest the function accepts, rather than being refused.
func TestRedisReplayTTLIsBounded(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	rs := compile(t, &policyconfig.Config{Identity: policyconfig.Identity{Namespace: "team-a"}})
	l := newRedis(t, srv, rs, RedisOptions{})
	for _, ttl := range []time.Duration{time.Minute, 10 * 365 * 24 * time.Hour} {
		key := "jti:" + ttl.String()
		if first, err := l.Once(ctx, key, ttl); err != nil || !first {
			t.Fatalf("Once(ttl %v) = %v, %v", ttl, first, err)
		}
		got := srv.Client(t).PTTL(ctx, rs.replayKey(key)).Val()
		if want := min(ttl, redislib.MaxReplayTTL); got <= 0 || got > want {
			t.Fatalf("Once(ttl %v): key TTL %v, want within (0, %v]", ttl, got, want)
		}
	}
}
