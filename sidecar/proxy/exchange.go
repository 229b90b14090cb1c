package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

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
