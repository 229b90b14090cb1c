// Package proxy is the sidecar's HTTP handler: a chain of small wrappers, each one concern, in front of a
// reverse proxy to the Anthropic API.
//
//	WithRecover → WithExchange → WithMetrics → WithAudit → WithEndUser → WithBody → WithDecision →
//	WithLimits → WithCredentials → forward
//
// The per-request state travels in one *Exchange stored in the request context. The policy is loaded
// once per request, so a hot reload never changes the rules in the middle of a call.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/usage"
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
	// Log is the operational logger.
	Log *slog.Logger
	// Workload is this workload's identity (limit key and audit field).
	Workload string
	// Caller, when set (gateway mode with mTLS), returns the calling workload's verified identity; it
	// replaces Workload for that request.
	Caller func(*http.Request) string
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
	h = WithDecision(o.Log, h)
	h = WithBody(h)
	h = WithEndUser(o.EndUser, o.Log, h)
	h = WithAudit(o.Audit, h)
	h = WithMetrics(o.Metrics, h)
	h = WithExchange(o.Policy, o.Workload, o.Caller, h)
	return WithRecover(o.Log, h)
}

// Exchange is the state of one request as it moves through the chain.
type Exchange struct {
	Start    time.Time
	Policy   *decide.Policy
	Decision decide.Decision
	Body     []byte
	// Denial is set by whichever wrapper refused the request (policy, limit, proxy error).
	Denial   *decide.Denial
	Shadowed bool // a rule would have denied but shadow mode let the request through
	// ShadowDenial is an end-user refusal that shadow mode let through.
	ShadowDenial *decide.Denial
	// Outcome of forwarding.
	Forwarded bool
	// Status is the response status, set when the response is done.
	Status            int
	UpstreamStart     time.Time
	UpstreamLatency   time.Duration
	UpstreamRequestID string
	Usage             usage.Usage
	UsageSeen         bool
	StreamError       string
	ClientAborted     bool
	// Key is the API key injected upstream; it lives only here and in the outbound header.
	Key string
	// Bearer says Key is an OAuth access token (Authorization: Bearer), not an API key (x-api-key).
	Bearer    bool
	Workload  string
	Namespace string
	// User is the verified end user (nil without one); EndUser is its subject for audit and metrics.
	User    *enduser.Principal
	EndUser string

	w *statusWriter
}

type ctxKey struct{}

// FromContext returns the request's Exchange (nil outside the chain).
func FromContext(ctx context.Context) *Exchange {
	ex, _ := ctx.Value(ctxKey{}).(*Exchange)
	return ex
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

// WithExchange starts the request's Exchange and takes the policy snapshot. caller, when set, names
// the calling workload per request (gateway mode).
func WithExchange(policy func() *decide.Policy, workload string, caller func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := policy()
		ex := &Exchange{Start: time.Now(), Policy: p, Workload: workload}
		if caller != nil {
			if id := caller(r); id != "" {
				ex.Workload = id
			}
		}
		ex.Namespace = p.Config.Identity.Namespace
		if ex.Namespace == "" {
			ex.Namespace = p.Config.Policy.Namespace
		}
		ex.w = &statusWriter{ResponseWriter: w}
		next.ServeHTTP(ex.w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ex)))
	})
}

// statusWriter records the status code. It forwards Flush and exposes Unwrap for
// http.ResponseController, so streaming stays unbuffered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// status is the response status so far (200 once anything was written without an explicit status).
func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// deny writes a denial and records it.
func (ex *Exchange) deny(w http.ResponseWriter, d *decide.Denial, retryable bool, retryAfter time.Duration) {
	ex.Denial = d
	WriteError(w, d, retryable, retryAfter)
}

// decisionLabel is the audit and metric decision of a finished exchange.
func (ex *Exchange) decisionLabel() string {
	switch {
	case ex.Denial != nil && ex.Denial.Status >= 500:
		return audit.DecisionError
	case ex.Denial != nil:
		return audit.DecisionDeny
	case ex.Shadowed:
		return audit.DecisionShadowDeny
	default:
		return audit.DecisionAllow
	}
}

// rule returns the rule that denied (or would have), and its message.
func (ex *Exchange) rule() (string, string) {
	if ex.Denial != nil {
		return ex.Denial.Rule, ex.Denial.Message
	}
	if ex.Decision.Denial != nil {
		return ex.Decision.Denial.Rule, ex.Decision.Denial.Message
	}
	if ex.ShadowDenial != nil {
		return ex.ShadowDenial.Rule, ex.ShadowDenial.Message
	}
	return "", ""
}

// WithMetrics counts the request and observes its latency and tokens when it is done.
func WithMetrics(m *metrics.Metrics, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.InFlight.Inc()
		// Deferred: ReverseProxy aborts a broken stream by panicking with http.ErrAbortHandler, and an
		// aborted request must still be counted.
		defer m.InFlight.Dec()
		defer observe(m, r)
		next.ServeHTTP(w, r)
	})
}

func observe(m *metrics.Metrics, r *http.Request) {
	ex := FromContext(r.Context())
	ex.Status = ex.w.code()
	ep := endpointLabel(r.URL.Path)
	// The model label is client-chosen text: use it only once the upstream accepted it as a model, so
	// a client cannot grow the label set without bound.
	model := "-"
	if ex.Decision.Model != "" {
		model = "other"
		if ex.Forwarded && ex.Status < 400 {
			model = ex.Decision.Model
		}
	}
	stream := strconv.FormatBool(ex.Decision.Fields.Stream)
	m.Requests.WithLabelValues(ep, ex.decisionLabel(), model, strconv.Itoa(ex.Status)).Inc()
	m.Duration.WithLabelValues(ep, stream).Observe(time.Since(ex.Start).Seconds())
	if ex.Forwarded && ex.UpstreamLatency > 0 {
		m.UpstreamDuration.WithLabelValues(ep, stream).Observe(ex.UpstreamLatency.Seconds())
	}
	if ex.EndUser != "" && ex.Policy.Config.Audit.EndUserMetricLabel {
		m.EndUserRequests.WithLabelValues(ex.EndUser, ex.decisionLabel()).Inc()
		if ex.UsageSeen {
			m.EndUserTokens.WithLabelValues(ex.EndUser, "input").Add(float64(ex.Usage.TotalInput()))
			m.EndUserTokens.WithLabelValues(ex.EndUser, "output").Add(float64(ex.Usage.OutputTokens))
		}
	}
	if ex.UsageSeen {
		u := ex.Usage
		m.Tokens.WithLabelValues("input", model).Add(float64(u.InputTokens))
		m.Tokens.WithLabelValues("output", model).Add(float64(u.OutputTokens))
		m.Tokens.WithLabelValues("cache_read", model).Add(float64(u.CacheReadInputTokens))
		m.Tokens.WithLabelValues("cache_creation", model).Add(float64(u.CacheCreationInputTokens))
	}
}

// endpointLabel bounds the endpoint label's cardinality.
func endpointLabel(p string) string {
	switch {
	case p == "/v1/messages", p == "/v1/messages/count_tokens", p == "/v1/models":
		return p
	case len(p) > len("/v1/models/") && p[:len("/v1/models/")] == "/v1/models/":
		return "/v1/models/*"
	default:
		return "other"
	}
}

// WithAudit writes the audit record when the request is done.
func WithAudit(l *audit.Logger, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer writeAudit(l, r) // deferred: see WithMetrics
		next.ServeHTTP(w, r)
	})
}

func writeAudit(l *audit.Logger, r *http.Request) {
	ex := FromContext(r.Context())
	ex.Status = ex.w.code()
	c := ex.Policy.Config
	rule, reason := ex.rule()
	rec := audit.Record{
		Time:              ex.Start,
		Policy:            c.Policy.Namespace + "/" + c.Policy.Name,
		ConfigHash:        ex.Policy.Hash,
		Workload:          ex.Workload,
		Namespace:         ex.Namespace,
		Method:            r.Method,
		Path:              r.URL.Path,
		Model:             ex.Decision.Model,
		RequestedModel:    ex.Decision.RequestedModel,
		Stream:            ex.Decision.Fields.Stream,
		Decision:          ex.decisionLabel(),
		Rule:              rule,
		Reason:            reason,
		Status:            ex.Status,
		InputTokens:       ex.Usage.InputTokens,
		OutputTokens:      ex.Usage.OutputTokens,
		CacheReadTokens:   ex.Usage.CacheReadInputTokens,
		CacheWriteTokens:  ex.Usage.CacheCreationInputTokens,
		ClampedFrom:       ex.Decision.ClampedFrom,
		Latency:           time.Since(ex.Start),
		UpstreamLatency:   ex.UpstreamLatency,
		UpstreamRequestID: ex.UpstreamRequestID,
		StreamError:       ex.StreamError,
		ClientAborted:     ex.ClientAborted || r.Context().Err() != nil,
	}
	if !c.Audit.OmitEndUser {
		rec.EndUser = ex.EndUser
	}
	if c.Audit.Disabled {
		return
	}
	l.Write(r.Context(), &rec)
}

// WithCredentials loads the API key for the forwarder; without one the request fails with a retryable
// 503 rather than going upstream unauthenticated.
func WithCredentials(src credentials.Source, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		key, err := src.Get(r.Context())
		if err != nil {
			ex.deny(w, &decide.Denial{Rule: "credentials", Status: http.StatusServiceUnavailable, Type: decide.TypeAPI,
				Message: "claude-guard: no API key is available to the proxy yet"}, true, 0)
			return
		}
		ex.Key = key
		if b, ok := src.(credentials.BearerSource); ok && b.Bearer() {
			ex.Bearer = true
		}
		next.ServeHTTP(w, r)
	})
}

// WriteError writes an Anthropic-shaped error response originated by the proxy.
func WriteError(w http.ResponseWriter, d *decide.Denial, retryable bool, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderError, "true")
	if d.Rule != "" {
		h.Set(HeaderRule, d.Rule)
	}
	h.Set(HeaderShouldRetry, strconv.FormatBool(retryable))
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	}
	id := newRequestID()
	h.Set("request-id", id)
	body := make([]byte, 0, 128+len(d.Message))
	body = append(body, `{"type":"error","error":{"type":`...)
	body = strconv.AppendQuote(body, d.Type)
	body = append(body, `,"message":`...)
	body = appendJSONString(body, d.Message)
	body = append(body, `},"request_id":"`...)
	body = append(body, id...)
	body = append(body, "\"}\n"...)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(d.Status)
	// A failed write means the client is gone; the status is already recorded and there is no one to tell.
	_, _ = w.Write(body)
}

// appendJSONString appends s as a JSON string (strconv.Quote escapes are not all valid JSON).
func appendJSONString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			b = append(b, '\\', 'u', hexd[r>>12&0xf], hexd[r>>8&0xf], hexd[r>>4&0xf], hexd[r&0xf])
		default:
			b = append(b, string(r)...)
		}
	}
	return append(b, '"')
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return "req_cg_" + hex.EncodeToString(b[:])
}
