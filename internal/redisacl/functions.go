package redisacl

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/claude-guard/claude-guard/internal/rediskeys"
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
	client *redis.Client
	addr   string // scheme://host:port, for logs
	db     int    // the database of the URL, which sidecars select too

	mu      sync.Mutex
	checked time.Time // when the library was last found or loaded
}

// NewFunctions returns a Functions for the Redis at rawURL. It does not connect; the first command
// does.
func NewFunctions(rawURL string) (*Functions, error) {
	c, addr, err := newClient(rawURL)
	if err != nil {
		return nil, err
	}
	return &Functions{client: c, addr: addr, db: c.Options().DB}, nil
}

// newClient returns a client of the manager's for the Redis at rawURL, and its address without
// credentials. It does not connect.
func newClient(rawURL string) (*redis.Client, string, error) {
	addr, err := rediskeys.RedactURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		// go-redis quotes the URL in some parse errors: never repeat it.
		return nil, "", fmt.Errorf("failed to parse the Redis URL %s: not a valid redis:// or rediss:// URL", addr)
	}
	for _, d := range []*time.Duration{&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout} {
		if *d == 0 {
			*d = DefaultTimeout
		}
	}
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opt), addr, nil
}

// Addr is scheme://host:port of the Redis, without credentials.
func (f *Functions) Addr() string { return f.addr }

// EnsureFunctions loads claude-guard's function library unless Redis has it (redislib.Ensure), and
// reports whether it loaded it. Redis keeps the library in its RDB and AOF and replicates it, but one
// without persistence loses it in a restart, so callers ask again and again; a library found in place
// is trusted for functionsRecheck.
func (f *Functions) EnsureFunctions(ctx context.Context) (loaded bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checked) < functionsRecheck {
		return false, nil
	}
	loaded, err = redislib.Ensure(ctx, f.client)
	if err != nil {
		return false, fmt.Errorf("failed to load claude-guard's functions into Redis %s: %w", f.addr, err)
	}
	f.checked = time.Now()
	return loaded, nil
}

// Close closes the connections.
func (f *Functions) Close() error { return f.client.Close() }
