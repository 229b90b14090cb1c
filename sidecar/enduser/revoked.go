package enduser

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// RuleRevoked is the rule of a refusal of a revoked token or user.
const RuleRevoked = "endUser.revoked"

// Revocations is what the sidecar refuses as revoked: the union of the list rendered into its config
// and the one the operator shares through Redis (the Redis backend only), which arrives within seconds
// where the config takes the kubelet's ConfigMap refresh. A lookup reads two maps and takes no lock: it
// runs for every request with an end-user token, after the token cache, so a cached token is refused
// as soon as it is revoked.
//
// Losing the shared list (Redis unreachable) keeps the last one read: an outage never lifts a
// revocation. A shared list found empty (the operator removed the last revocation, or a restarted Redis
// not yet refilled) clears it; the config's copy covers the second case.
type Revocations struct {
	config atomic.Pointer[map[string]policyconfig.Revocation]
	shared atomic.Pointer[map[string]policyconfig.Revocation]
}

// NewRevocations returns an empty set.
func NewRevocations() *Revocations { return &Revocations{} }

// SetConfig replaces the config's list (at start and with every reload).
func (r *Revocations) SetConfig(list []policyconfig.Revocation) {
	m := make(map[string]policyconfig.Revocation, len(list))
	for _, e := range list {
		m[e.ID] = e
	}
	r.config.Store(&m)
}

// SetShared replaces the list read from Redis.
func (r *Revocations) SetShared(m map[string]policyconfig.Revocation) { r.shared.Store(&m) }

// Check returns the revocation that refuses p at now: one of its token (issuer and jti) or of its user
// (issuer and subject).
func (r *Revocations) Check(p *Principal, now time.Time) (policyconfig.Revocation, bool) {
	if r == nil {
		return policyconfig.Revocation{}, false
	}
	var sets []map[string]policyconfig.Revocation
	for _, set := range []*map[string]policyconfig.Revocation{r.config.Load(), r.shared.Load()} {
		if set != nil && len(*set) > 0 {
			sets = append(sets, *set)
		}
	}
	if len(sets) == 0 {
		// Nothing revoked, the usual case: no IDs to hash on this request's path.
		return policyconfig.Revocation{}, false
	}
	ids := []string{policyconfig.RevocationID(policyconfig.RevokeSubject, p.Issuer, p.Subject)}
	if p.jti != "" {
		ids = append(ids, policyconfig.RevocationID(policyconfig.RevokeJTI, p.Issuer, p.jti))
	}
	for _, set := range sets {
		for _, id := range ids {
			if e, ok := set[id]; ok && e.Active(now) {
				return e, true
			}
		}
	}
	return policyconfig.Revocation{}, false
}

// revokedFailure is the refusal of a revoked token. The message names no revocation (its name is the
// tenant's, and the caller may be the person it is about); the audit record does.
func revokedFailure(e policyconfig.Revocation) *Failure {
	return &Failure{Status: http.StatusUnauthorized, Rule: RuleRevoked, Revocation: e.Name,
		Message: "claude-guard: end-user token refused: it was revoked"}
}

// SharedSource is where the operator shares a namespace's revocations (limits.Redis.Revocations): it
// returns the list's version and, when that is not known, the list (revocation ID to
// policyconfig.Revocation.SharedValue).
type SharedSource interface {
	Revocations(ctx context.Context, known string) (version string, entries map[string]string, err error)
}

// RevocationPoll is how often a sidecar with the Redis backend reads its namespace's revocations: with
// the operator's write (well under a second after the ClaudeRevocation is created) a revocation is in
// force on every replica within about this long. A read is one HGET while nothing changed.
const RevocationPoll = 2 * time.Second

// Follow reads the shared list from src every interval until ctx ends. Failures are logged once per
// outage; the last list read stays in force.
func (r *Revocations) Follow(ctx context.Context, src SharedSource, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var version string
	failing := false
	for {
		v, entries, err := src.Revocations(ctx, version)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				log.Warn("Failed to read the namespace's revocations from Redis; the last ones read and the config's stay in force", "error", err.Error())
			}
			failing = true
		case err == nil:
			if failing {
				log.Info("Reading the namespace's revocations from Redis again")
			}
			failing = false
			if v != version {
				r.SetShared(parseShared(entries, log))
				version = v
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// parseShared reads the shared entries; a malformed one is skipped and logged (the operator wrote it,
// so it is a bug or another writer, never a reason to drop the rest).
func parseShared(entries map[string]string, log *slog.Logger) map[string]policyconfig.Revocation {
	m := make(map[string]policyconfig.Revocation, len(entries))
	for id, v := range entries {
		e, err := policyconfig.ParseShared(id, v)
		if err != nil {
			log.Warn("Skipping a malformed revocation read from Redis", "error", err.Error())
			continue
		}
		m[id] = e
	}
	return m
}
