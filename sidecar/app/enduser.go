package app

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
)

// endUsers holds the end-user authenticator of the config in force. A reload that changes the endUser
// settings builds a new one (its issuers are discovered again); any other reload keeps it, with its
// cache of verified tokens.
type endUsers struct {
	ctx     context.Context
	replay  enduser.ReplayStore
	revoked *enduser.Revocations
	log     *slog.Logger

	mu     sync.Mutex
	cfg    *policyconfig.EndUser
	cancel context.CancelFunc
	cur    atomic.Pointer[enduser.Authenticator]
}

func newEndUsers(ctx context.Context, c *policyconfig.Config, replay enduser.ReplayStore, revoked *enduser.Revocations, log *slog.Logger) (*endUsers, error) {
	e := &endUsers{ctx: ctx, replay: replay, revoked: revoked, log: log}
	return e, e.set(c)
}

// get returns the authenticator in force, nil when end-user verification is off.
func (e *endUsers) get() *enduser.Authenticator { return e.cur.Load() }

// set applies a (re)loaded config.
func (e *endUsers) set(c *policyconfig.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	// The settings in force: none when verification is off or the policy denies everything anyway.
	next := c.EndUser
	if (next != nil && next.Mode == policyconfig.EndUserDisabled) || c.Deny != nil {
		next = nil
	}
	if reflect.DeepEqual(next, e.cfg) {
		return nil
	}
	var a *enduser.Authenticator
	var cancel context.CancelFunc
	if next != nil {
		var err error
		a, err = enduser.New(enduser.Options{Config: next, Replay: e.replay, Revoked: e.revoked, Log: e.log})
		if err != nil {
			return fmt.Errorf("failed to set up end-user verification: %w", err)
		}
		var ctx context.Context
		ctx, cancel = context.WithCancel(e.ctx)
		a.Start(ctx)
	}
	if e.cancel != nil {
		e.cancel()
	}
	e.cfg, e.cancel = next, cancel
	e.cur.Store(a)
	return nil
}

// close stops the issuers' background discovery.
func (e *endUsers) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		e.cancel()
	}
}
