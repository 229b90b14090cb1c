package redisacl

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redisconn"
	"github.com/claude-guard/claude-guard/internal/redislib"
)

// DefaultTimeout bounds each admin command, so an unreachable Redis costs a reconcile seconds, not
// minutes.
const DefaultTimeout = 5 * time.Second

// functionsRecheck is how long EnsureFunctions trusts a library it found in place: every namespace's
// reconcile asks, and one look at Redis answers them all for that long.
const functionsRecheck = 5 * time.Second

// Functions keeps claude-guard's function library (internal/redislib) loaded in one Redis, over a
// connection of the manager's (--redis-url; its user must be allowed FUNCTION LIST and FUNCTION LOAD).
// Sidecars only call the functions. An Admin has one; without per-namespace users the manager uses one
// on its own.
type Functions struct {
	client *redisconn.Client
	addr   string // scheme://host:port, for logs
	db     int    // the database of the URL, which sidecars select too

	mu      sync.Mutex
	checked time.Time // when the library was last found or loaded
}

// NewFunctions returns a Functions for the Redis at rawURL. It does not connect; the first command
// does.
func NewFunctions(rawURL string) (*Functions, error) {
	c, err := newClient(rawURL)
	if err != nil {
		return nil, err
	}
	return &Functions{client: c, addr: c.URL().String(), db: c.URL().DB}, nil
}

// newClient returns a client of the manager's for the Redis at rawURL, of any topology
// (internal/redisconn). It does not connect.
func newClient(rawURL string) (*redisconn.Client, error) {
	u, err := redisconn.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	return redisconn.NewClient(u, redisconn.Settings{Timeout: DefaultTimeout}), nil
}

// Addr is scheme://host:port of the Redis, without credentials.
func (f *Functions) Addr() string { return f.addr }

// EnsureFunctions loads claude-guard's function library unless Redis has it (redislib.Ensure), on
// every primary of a cluster, and reports whether it loaded it anywhere. Redis keeps the library in its RDB and AOF and replicates it, but one
// without persistence loses it in a restart, so callers ask again and again; a library found in place
// is trusted for functionsRecheck.
func (f *Functions) EnsureFunctions(ctx context.Context) (loaded bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checked) < functionsRecheck {
		return false, nil
	}
	var mu sync.Mutex
	err = f.client.EachNode(ctx, redisconn.Primaries, func(ctx context.Context, _ string, n redis.UniversalClient) error {
		l, err := redislib.Ensure(ctx, n)
		mu.Lock()
		loaded = loaded || l
		mu.Unlock()
		return err
	})
	if err != nil {
		return loaded, fmt.Errorf("failed to load claude-guard's functions into Redis %s: %w", f.addr, err)
	}
	f.checked = time.Now()
	return loaded, nil
}

// Close closes the connections.
func (f *Functions) Close() error { return f.client.Close() }
