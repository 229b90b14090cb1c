package app

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisbroker"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
)

// limiter is the rate limiter the config names. It is also the jti replay store of end-user tokens, so
// replay state lives where the counters do.
type limiter interface {
	limits.Limiter
	enduser.ReplayStore
	SetRules(*limits.Rules)
	Close() error
}

// memoryLimiter is the default, in-process backend.
type memoryLimiter struct{ *limits.Memory }

func (memoryLimiter) Close() error { return nil }

// newLimiter builds the backend of c.Limits: Local (the default) or Redis. The backend, the Redis URL and
// user are fixed at startup; a reload swaps the rules and the failure mode. With limits.redisUser the
// password comes from the credential broker (limits.redisBroker, with the pod's SVID id) or is read
// from passwordFile.
func newLimiter(c *policyconfig.Config, rs *limits.Rules, passwordFile string, id redisbroker.Source, m *metrics.Metrics, log *slog.Logger) (limiter, error) {
	if c.Limits.Backend != policyconfig.BackendRedis {
		return memoryLimiter{limits.NewMemory(rs)}, nil
	}
	if c.Limits.RedisURL == "" {
		return nil, errors.New("limits.backend is Redis but limits.redisURL is empty")
	}
	o := limits.RedisOptions{
		URL: c.Limits.RedisURL, Username: c.Limits.RedisUser, PasswordFile: passwordFile, Rules: rs, Log: log,
		OnFailOpen: func(op string) { m.LimiterFailOpen.WithLabelValues(op).Inc() },
	}
	if b := c.Limits.RedisBroker; b != nil {
		if id == nil {
			return nil, errors.New("limits.redisBroker needs the SPIFFE Workload API: set identity.trustDomain in the config and " + wellknown.EnvSPIFFESocket)
		}
		bc, err := redisbroker.NewClient(redisbroker.ClientOptions{URL: b.URL, ServerID: b.ID, Source: id})
		if err != nil {
			return nil, fmt.Errorf("limits.redisBroker: %w", err)
		}
		o.Credentials = bc.Credentials
	}
	r, err := limits.NewRedis(o)
	if err != nil {
		return nil, err
	}
	m.WatchLimiterBackend(r.Up)
	addr, _ := limits.RedactURL(c.Limits.RedisURL) // NewRedis checked it
	log.Info("Rate limits are shared through Redis", "redis", addr, "user", c.Limits.RedisUser, "failureMode", c.Limits.FailureMode)
	return r, nil
}
