package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// Exchange is the state of one request as it moves through the chain. Each stage writes its own part
// and reads what earlier stages wrote.
type Exchange struct {
	Start  time.Time
	Policy *decide.Policy
	// Caller is who the request is charged to and recorded as (WithExchange, WithEndUser).
	Caller Caller
	// Body is the request body as read (WithBody), then as decided on (WithDecision).
	Body     []byte
	Decision decide.Decision
	// Denial is the exchange's one refusal: the error the client got (from any stage, or a proxy
	// error), or in shadow mode (Denial.Shadow) the first rule that would have refused while the
	// request went on. An enforced denial replaces a shadowed one; a later shadowed one is dropped.
	Denial *decide.Denial
	// Upstream is what forwarding saw.
	Upstream Upstream
	// ClientAborted is set when the client went away before the response was done.
	ClientAborted bool
	// Revocation names the ClaudeRevocation that refused the end user's token, for audit.
	Revocation string
	// Session is the client's session id (WithSession), "" without one.
	Session string
	// requestsHeld is set when WithRequestCount reserved the request's count before its body was read.
	requestsHeld bool

	// modelsList is the caller's paging of a models list request (nil for other requests): the sidecar
	// fetches the whole list and pages what the caller may use itself (models.go).
	modelsList *listParams

	// cred is the credential injected upstream; it lives only here and in the outbound header.
	cred credential
	w    *statusWriter
}

// Caller is the request's workload and verified end user.
type Caller struct {
	Workload  string
	Namespace string
	// User is the verified end user, nil without one.
	User *enduser.Principal
}

// EndUser is the verified end user's subject for audit and metrics, "" without one.
func (c *Caller) EndUser() string {
	if c.User == nil {
		return ""
	}
	return c.User.Subject
}

// Upstream is the forwarded request's side of the exchange.
type Upstream struct {
	// Forwarded is set once the request was handed to the upstream transport; Messages when it is a
	// Messages call, the only kind the upstream bills by its usage.
	Forwarded, Messages bool
	// Unanswered is set when the transport failed without a response (not a timeout): the request is
	// refunded, not charged.
	Unanswered bool
	Start      time.Time
	Latency    time.Duration
	// FirstChunk is when the first bytes of a streamed response arrived, from the exchange's start.
	FirstChunk time.Duration
	RequestID  string
	// Usage is what the response reported, when UsageSeen.
	Usage     usage.Usage
	UsageSeen bool
	// StreamError is the type of an error event in a streamed response.
	StreamError string
	// UsageSource says where Usage came from when the response did not report it whole
	// (UsageEstimated, UsageReserved); "" for a complete report.
	UsageSource string
}

// credential is the key sent upstream: an API key (x-api-key) or, when bearer, an OAuth access token
// (Authorization: Bearer).
type credential struct {
	key    string
	bearer bool
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
		ex := &Exchange{Start: time.Now(), Policy: p, Caller: Caller{Workload: workload, Namespace: p.Config.Identity.Namespace}}
		if caller != nil {
			if id := caller(r); id != "" {
				ex.Caller.Workload = id
			}
		}
		if ex.Caller.Namespace == "" {
			ex.Caller.Namespace = p.Config.Policy.Namespace
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

// code is the response status so far (200 once anything was written without an explicit status).
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

// refuse records a denial and reports whether it ended the request. An enforced denial is written to
// the client (true); a shadowed one (shadow mode) is kept when it is the first, and the request goes on.
func (ex *Exchange) refuse(w http.ResponseWriter, d *decide.Denial, retryable bool, retryAfter time.Duration) bool {
	if d.Shadow {
		if ex.Denial == nil {
			ex.Denial = d
		}
		return false
	}
	ex.Denial = d
	WriteError(w, d, retryable, retryAfter)
	return true
}

// decisionLabel is the audit and metric decision of a finished exchange.
func (ex *Exchange) decisionLabel() string {
	switch d := ex.Denial; {
	case d == nil:
		return audit.DecisionAllow
	case d.Shadow:
		return audit.DecisionShadowDeny
	case d.Status >= 500:
		return audit.DecisionError
	default:
		return audit.DecisionDeny
	}
}

// rule returns the rule that denied (or would have), and its message.
func (ex *Exchange) rule() (string, string) {
	if ex.Denial == nil {
		return "", ""
	}
	return ex.Denial.Rule, ex.Denial.Message
}

// limitKeys are whom the request is charged to in the limiter.
func (ex *Exchange) limitKeys() limits.Keys {
	return limits.Keys{Workload: ex.Caller.Workload, EndUser: ex.endUserKey(), Namespace: ex.Caller.Namespace, Session: ex.Session}
}
