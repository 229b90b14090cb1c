package redisacl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/claude-guard/claude-guard/internal/rediskeys"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// DefaultTimeout bounds each admin command, so an unreachable Redis costs a reconcile seconds, not
// minutes.
const DefaultTimeout = 5 * time.Second

// functionsRecheck is how long EnsureFunctions trusts a library it found in place: every namespace's
// reconcile asks, and one look at Redis answers them all for that long.
const functionsRecheck = 5 * time.Second

// Admin manages the namespace users and claude-guard's function library over the manager's admin
// connection (a user allowed to run ACL and FUNCTION).
type Admin struct {
	client *redis.Client
	master []byte
	addr   string // scheme://host:port, for logs
	db     int    // the database of the URL, which sidecars select too

	mu        sync.Mutex
	functions time.Time // when the library was last found or loaded
}

// NewAdmin returns an Admin for the Redis at rawURL (the manager's --redis-url) deriving passwords from
// master. It does not connect; the first command does.
func NewAdmin(rawURL string, master []byte) (*Admin, error) {
	if len(master) < minMasterLen {
		return nil, fmt.Errorf("the Redis ACL master secret must be at least %d bytes, got %d", minMasterLen, len(master))
	}
	addr, err := rediskeys.RedactURL(rawURL)
	if err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		// go-redis quotes the URL in some parse errors: never repeat it.
		return nil, fmt.Errorf("failed to parse the Redis URL %s: not a valid redis:// or rediss:// URL", addr)
	}
	for _, d := range []*time.Duration{&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout} {
		if *d == 0 {
			*d = DefaultTimeout
		}
	}
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &Admin{client: redis.NewClient(opt), master: master, addr: addr, db: opt.DB}, nil
}

// Addr is scheme://host:port of the Redis, without credentials.
func (a *Admin) Addr() string { return a.addr }

// Password returns the password of the user of namespace, whose UID is uid.
func (a *Admin) Password(namespace, uid string) string { return Password(a.master, namespace, uid) }

// EnsureUser (re)creates the user of namespace (UID uid) with its derived password. It is idempotent and
// cheap, so the controller runs it periodically: ACL users live in Redis memory and a restarted Redis
// has none.
func (a *Admin) EnsureUser(ctx context.Context, namespace, uid string) error {
	if uid == "" {
		return fmt.Errorf("namespace %s has no UID to derive its Redis password from", namespace)
	}
	pw := a.Password(namespace, uid)
	args, err := SetUserArgs(namespace, pw, a.db)
	if err != nil {
		return err
	}
	if err := a.client.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("failed to set Redis ACL user %s on %s: %w", wellknown.RedisUser(namespace), a.addr, redact(err, pw))
	}
	return nil
}

// EnsureFunctions loads claude-guard's function library unless Redis has it (redislib.Ensure), and
// reports whether it loaded it. The library is what sidecars call; Redis keeps it in its RDB and AOF and
// replicates it, but a Redis without persistence loses it in a restart, so the controller asks at every
// reconcile. A library found in place is trusted for functionsRecheck.
func (a *Admin) EnsureFunctions(ctx context.Context) (loaded bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.functions) < functionsRecheck {
		return false, nil
	}
	loaded, err = redislib.Ensure(ctx, a.client)
	if err != nil {
		return false, fmt.Errorf("failed to load claude-guard's functions into Redis %s: %w", a.addr, err)
	}
	a.functions = time.Now()
	return loaded, nil
}

// DeleteUser removes namespace's user; Redis also closes its connections. A missing user is not an
// error.
func (a *Admin) DeleteUser(ctx context.Context, namespace string) error {
	if err := a.client.Do(ctx, "ACL", "DELUSER", wellknown.RedisUser(namespace)).Err(); err != nil {
		return fmt.Errorf("failed to delete Redis ACL user %s on %s: %w", wellknown.RedisUser(namespace), a.addr, err)
	}
	return nil
}

// Namespaces returns the namespaces that have a user in Redis (users named cg-<namespace>), so users
// left behind while the operator was down can be found and removed.
func (a *Admin) Namespaces(ctx context.Context) ([]string, error) {
	users, err := a.client.Do(ctx, "ACL", "USERS").StringSlice()
	if err != nil {
		return nil, fmt.Errorf("failed to list Redis ACL users on %s: %w", a.addr, err)
	}
	var out []string
	for _, u := range users {
		if ns, ok := strings.CutPrefix(u, wellknown.RedisUserPrefix); ok && dnsLabel.MatchString(ns) {
			out = append(out, ns)
		}
	}
	return out, nil
}

// Close closes the admin connections.
func (a *Admin) Close() error { return a.client.Close() }

// redact keeps a password out of an error: Redis quotes a modifier it rejects, and ">password" is one.
func redact(err error, password string) error {
	if msg := err.Error(); strings.Contains(msg, password) {
		return errors.New(strings.ReplaceAll(msg, password, "[redacted]"))
	}
	return err
}
