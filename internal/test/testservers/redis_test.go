//go:build integration

package testservers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

func TestRedisServesStopsAndRestartsOnItsPort(t *testing.T) {
	for _, tc := range []struct {
		name       string
		o          testservers.RedisOptions
		wantScheme string
	}{
		{name: "plain", wantScheme: "redis://"},
		{name: "password", o: testservers.RedisOptions{Password: "s3cret"}, wantScheme: "redis://"},
		{name: "TLS", o: testservers.RedisOptions{TLS: true}, wantScheme: "rediss://"},
		{name: "no functions", o: testservers.RedisOptions{NoFunctions: true}, wantScheme: "redis://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r := testservers.StartRedis(t, tc.o)
			if !strings.HasPrefix(r.URL, tc.wantScheme) || !strings.HasPrefix(r.Addr, "127.0.0.1:") {
				t.Fatalf("URL = %q, Addr = %q", r.URL, r.Addr)
			}
			c := r.Client(t)
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
				t.Fatalf("GET = %q, %v", v, err)
			}
			if tc.o.Password != "" {
				o := r.Options()
				o.Password = "wrong"
				bad := redis.NewClient(o)
				defer bad.Close()
				if err := bad.Ping(ctx).Err(); err == nil {
					t.Fatal("a wrong password was accepted")
				}
			}

			addr := r.Addr
			r.Stop()
			if err := c.Ping(ctx).Err(); err == nil {
				t.Fatal("the server still answers after Stop")
			}
			r.Stop() // idempotent

			r.Start(t)
			if r.Addr != addr {
				t.Fatalf("restarted on %s, want %s", r.Addr, addr)
			}
			// The old client reconnects; nothing was persisted.
			if _, err := c.Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("after restart GET = %v, want redis.Nil (no persistence)", err)
			}
			// The function library is loaded again at every Start, unless NoFunctions.
			libs, err := c.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: redislib.Library}).Result()
			if err != nil || len(libs) != map[bool]int{false: 1, true: 0}[tc.o.NoFunctions] {
				t.Fatalf("after restart the libraries are %v, %v (NoFunctions=%v)", libs, err, tc.o.NoFunctions)
			}
		})
	}
}
