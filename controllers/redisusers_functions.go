package controllers

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/claude-guard/claude-guard/internal/redisacl"
	"github.com/claude-guard/claude-guard/internal/redislib"
)

// RedisFunctionsLoader keeps claude-guard's function library loaded in Redis when sidecars share the
// manager's --redis-url (per-namespace users off); with per-namespace users the Redis user controller
// does it as part of each namespace's reconcile. Sidecars only call the functions: without them, every
// Redis-backed policy's failure mode applies. It runs on the leader: at start and every Resync, and
// every 10 s while Redis fails.
type RedisFunctionsLoader struct {
	Functions *redisacl.Functions
	// Resync is how often the library is looked for; DefaultRedisResync when zero.
	Resync time.Duration
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: one replica loads.
func (l *RedisFunctionsLoader) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (l *RedisFunctionsLoader) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("redis-functions")
	resync := l.Resync
	if resync <= 0 {
		resync = DefaultRedisResync
	}
	failing := false
	for {
		next := resync
		loaded, err := l.Functions.EnsureFunctions(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			// Logged once per outage: the error names the library and scheme://host:port only.
			if !failing {
				log.Error(err, "Failed to load claude-guard's function library into Redis; Redis-backed policies apply their failure mode until it is loaded; retrying")
			}
			failing, next = true, min(resync, 10*time.Second)
		case loaded:
			log.Info("Loaded claude-guard's function library into Redis", "library", redislib.Library, "redis", l.Functions.Addr())
			failing = false
		case failing:
			log.Info("Found claude-guard's function library in Redis again", "library", redislib.Library, "redis", l.Functions.Addr())
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}
