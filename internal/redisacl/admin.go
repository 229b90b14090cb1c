package redisacl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redisconn"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Admin manages the namespace users over the manager's admin connection (a user allowed to run ACL),
// and keeps claude-guard's function library loaded over it (Functions).
type Admin struct {
	*Functions
	master []byte
}

// NewAdmin returns an Admin for the Redis at rawURL (the manager's --redis-url) deriving passwords from
// master. It does not connect; the first command does.
func NewAdmin(rawURL string, master []byte) (*Admin, error) {
	if len(master) < minMasterLen {
		return nil, fmt.Errorf("the Redis ACL master secret must be at least %d bytes, got %d", minMasterLen, len(master))
	}
	f, err := NewFunctions(rawURL)
	if err != nil {
		return nil, err
	}
	return &Admin{Functions: f, master: master}, nil
}

// Password returns the password of the user of namespace, whose UID is uid.
func (a *Admin) Password(namespace, uid string) string { return Password(a.master, namespace, uid) }

// EnsureUser (re)creates the user of namespace (UID uid) with its derived password, on every node:
// Redis does not replicate ACL users, and a replica a failover promotes must know them at once. It is
// idempotent and cheap, so the controller runs it periodically: ACL users live in Redis memory and a
// restarted Redis has none.
func (a *Admin) EnsureUser(ctx context.Context, namespace, uid string) error {
	if uid == "" {
		return fmt.Errorf("namespace %s has no UID to derive its Redis password from", namespace)
	}
	pw := a.Password(namespace, uid)
	args, err := SetUserArgs(namespace, pw, a.db, a.client.URL().Topology == redisconn.Cluster)
	if err != nil {
		return err
	}
	err = a.client.EachNode(ctx, redisconn.AllNodes, func(ctx context.Context, _ string, n redis.UniversalClient) error {
		return n.Do(ctx, args...).Err()
	})
	if err != nil {
		return fmt.Errorf("failed to set Redis ACL user %s on %s: %w", wellknown.RedisUser(namespace), a.addr, redact(err, pw))
	}
	return nil
}

// DeleteUser removes namespace's user from every node; Redis also closes its connections. A missing
// user is not an error.
func (a *Admin) DeleteUser(ctx context.Context, namespace string) error {
	err := a.client.EachNode(ctx, redisconn.AllNodes, func(ctx context.Context, _ string, n redis.UniversalClient) error {
		return n.Do(ctx, "ACL", "DELUSER", wellknown.RedisUser(namespace)).Err()
	})
	if err != nil {
		return fmt.Errorf("failed to delete Redis ACL user %s on %s: %w", wellknown.RedisUser(namespace), a.addr, err)
	}
	return nil
}

// Namespaces returns the namespaces that have a user on any node of the Redis (users named
// cg-<namespace>), so users left behind while the operator was down can be found and removed.
func (a *Admin) Namespaces(ctx context.Context) ([]string, error) {
	var (
		mu  sync.Mutex
		all = map[string]bool{}
	)
	err := a.client.EachNode(ctx, redisconn.AllNodes, func(ctx context.Context, _ string, n redis.UniversalClient) error {
		users, err := n.Do(ctx, "ACL", "USERS").StringSlice()
		mu.Lock()
		defer mu.Unlock()
		for _, u := range users {
			if ns, ok := strings.CutPrefix(u, wellknown.RedisUserPrefix); ok && dnsLabel.MatchString(ns) {
				all[ns] = true
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("failed to list Redis ACL users on %s: %w", a.addr, err)
	}
	return slices.Sorted(maps.Keys(all)), nil
}

// redact keeps a password out of an error: Redis quotes a modifier it rejects, and ">password" is one.
func redact(err error, password string) error {
	if msg := err.Error(); strings.Contains(msg, password) {
		return errors.New(strings.ReplaceAll(msg, password, "[redacted]"))
	}
	return err
}
