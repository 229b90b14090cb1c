//go:build integration

package redisusers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/redisacl"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// TestFunctionsLoaderWithoutNamespaceUsers: with per-namespace users off, the manager's loader keeps
// the function library in Redis: it loads it at start, again after FUNCTION FLUSH, and again after a
// Redis restart without persistence.
func TestFunctionsLoaderWithoutNamespaceUsers(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{Password: adminPassword, NoFunctions: true})
	f, err := redisacl.NewFunctions(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&controllers.RedisFunctionsLoader{Functions: f, Resync: 100 * time.Millisecond}).Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the loader returned %v", err)
		}
	})
	c := srv.Client(t)
	loaded := func(what string) {
		t.Helper()
		wait.For(t, 30*time.Second, what, func() error {
			libs, err := c.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: redislib.Library, WithCode: true}).Result()
			if err != nil {
				return err
			}
			if len(libs) != 1 || libs[0].Code != redislib.Source {
				return fmt.Errorf("libraries %v, want %s", libs, redislib.Library)
			}
			return nil
		})
	}
	loaded("loaded at start")
	if err := c.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	loaded("loaded again after FUNCTION FLUSH")
	srv.Stop()
	time.Sleep(300 * time.Millisecond) // a few failed passes
	srv.Start(t)
	loaded("loaded again after a restart")
}
