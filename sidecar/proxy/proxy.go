// Package proxy is the sidecar's HTTP handler: a chain of small wrappers, each one concern, in front of a
// reverse proxy to the Anthropic API.
//
//	WithRecover → WithProbe → WithExchange → WithMetrics → WithAudit → WithWire → WithEndUser →
//	WithBody → WithDecision → WithSession → WithModelsList → WithLimits → WithCredentials → forward
//
// The per-request state travels in one *Exchange stored in the request context (exchange.go). The
// policy is loaded once per request, so a hot reload never changes the rules in the middle of a call.
// One file per job: the chain (this file), the exchange, the wire (framing, methods' headers,
// credential spellings, the connectivity probe), end users, sessions, the models list, the body and decision stages,
// limits, credentials, metrics (observe.go), audit records (auditlog.go), the proxy's own errors
// (errors.go) and forwarding.
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"

	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/telemetry"
)

// Headers the proxy sets on errors it originates.
const (
	HeaderError       = "x-claude-guard-error"
	HeaderRule        = "x-claude-guard-rule"
	HeaderShouldRetry = "x-should-retry"
)

// Options configure the handler. Everything is built once, at startup.
type Options struct {
	// Upstream is the Anthropic API base URL.
	Upstream *url.URL
	// Policy returns the policy in force (an atomic load).
	Policy func() *decide.Policy
	// Credentials supplies the API key.
	Credentials credentials.Source
	// EndUser returns the end-user authenticator for the policy in force (nil when off); a nil func
	// disables end-user verification.
	EndUser func() *enduser.Authenticator
	// Limiter enforces limits and budgets; nil disables them.
	Limiter limits.Limiter
	// Audit receives one record per request; nil disables audit.
	Audit *audit.Logger
	// Metrics may be nil.
	Metrics *metrics.Metrics
	// Telemetry records the OpenTelemetry GenAI metrics and spans; nil records none.
	Telemetry *telemetry.Telemetry
	// Log is the operational logger.
	Log *slog.Logger
	// Workload is this workload's identity (limit key and audit field).
	Workload string
	// Caller, when set (gateway mode with mTLS), returns the calling workload's verified identity; it
	// replaces Workload for that request.
	Caller func(*http.Request) string
	// BodyBudget bounds the request bytes buffered at once; nil bounds nothing.
	BodyBudget *BodyBudget
	// Transport talks to the upstream; nil means NewTransport().
	Transport http.RoundTripper
}

// New builds the handler chain.
func New(o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	h := newForwarder(o)
	h = WithCredentials(o.Credentials, h)
	h = WithLimits(o.Limiter, o.Metrics, o.Log, h)
	h = WithModelsList(h)
	h = WithSession(h)
	h = WithDecision(o.Log, h)
	h = WithBody(o.BodyBudget, h)
	h = WithRequestCount(o.Limiter, o.Metrics, o.Log, h)
	h = WithEndUser(o.EndUser, o.Log, h)
	h = WithWire(h)
	h = WithAudit(o.Audit, h)
	h = WithMetrics(o.Metrics, o.Telemetry, h)
	h = WithExchange(o.Policy, o.Workload, o.Caller, h)
	h = WithProbe(h)
	return WithRecover(o.Log, h)
}

// WithRecover turns a panic into a 500 in Anthropic's shape and a log line (without the request body).
func WithRecover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				log.Error("Panic while proxying", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				WriteError(w, &decide.Denial{Rule: "internal", Status: http.StatusInternalServerError, Type: decide.TypeAPI,
					Message: "claude-guard: internal error"}, true, 0)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
