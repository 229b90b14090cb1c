package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// WithBody reads the request body, bounded by the policy's maxRequestBytes, so the decision can look at
// it and the forwarder can send exactly what was decided on.
func WithBody(budget *BodyBudget, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		max := ex.Policy.Config.MaxRequestBytes
		if r.ContentLength > max {
			ex.refuse(w, tooLarge(r.ContentLength, max), false, 0)
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		// The share is taken before the first byte is read and given back when the request is done:
		// the body (and its rewritten copy) is held until the upstream has it.
		sh := &share{budget: budget}
		defer sh.release()
		if r.ContentLength >= 0 && !sh.take(r.ContentLength) {
			refuseCapacity(w, ex, budget, r.ContentLength)
			return
		}
		body, err := readBody(r, max, sh)
		switch {
		case errors.Is(err, errBudgetFull):
			refuseCapacity(w, ex, budget, int64(len(body)))
			return
		case err != nil:
			ex.refuse(w, &decide.Denial{Rule: decide.RuleBody, Status: http.StatusBadRequest, Type: decide.TypeInvalidRequest,
				Message: "claude-guard: failed to read the request body"}, false, 0)
			return
		case int64(len(body)) > max:
			ex.refuse(w, tooLarge(int64(len(body)), max), false, 0)
			return
		}
		ex.Body = body
		next.ServeHTTP(w, r)
	})
}

// readBody reads at most max+1 bytes of r's body. A body of unknown length takes its budget chunk by
// chunk; a known length was taken whole before.
func readBody(r *http.Request, max int64, sh *share) ([]byte, error) {
	defer r.Body.Close()
	size := r.ContentLength
	src := io.LimitReader(r.Body, max+1)
	if size < 0 {
		size = 32 << 10
		src = &budgetReader{r: src, share: sh}
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	_, err := buf.ReadFrom(src)
	return buf.Bytes(), err
}

// refuseCapacity answers a body that does not fit in the budget now, before (or instead of) reading it.
func refuseCapacity(w http.ResponseWriter, ex *Exchange, budget *BodyBudget, n int64) {
	d, retryable := overCapacity(budget, n)
	// Connection: close, since the unread body would otherwise be drained into the connection first.
	w.Header().Set("Connection", "close")
	var after time.Duration
	if retryable {
		after = capacityRetryAfter
	}
	ex.refuse(w, d, retryable, after)
}

func tooLarge(n, max int64) *decide.Denial {
	return &decide.Denial{Rule: decide.RuleMaxBytes, Status: http.StatusRequestEntityTooLarge, Type: decide.TypeTooLarge,
		Message: fmt.Sprintf("claude-guard: request body of at least %d bytes exceeds the policy's limit of %d bytes (rule maxRequestBytes)", n, max)}
}

// WithDecision runs the policy decision and applies its rewrites. In shadow mode a denial is logged and
// the request goes on.
func WithDecision(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		path := r.URL.EscapedPath()
		ex.Decision = ex.Policy.Decide(decide.Request{Method: r.Method, Path: path, Body: ex.Body, User: ex.decisionUser()})
		d := &ex.Decision
		if dn := d.Denial; dn != nil {
			if dn.Rule == decide.RuleMethod {
				w.Header().Set("Allow", decide.AllowedMethods(path))
			}
			if ex.refuse(w, dn, false, 0) {
				return
			}
			log.Info("Shadow mode: request would have been denied", "rule", dn.Rule, "path", r.URL.Path, "model", d.Model)
		}
		ex.Body = d.Body
		next.ServeHTTP(w, r)
	})
}

// WithLimits reserves before forwarding and settles (or refunds) after the response is done. The
// x-claude-guard-ratelimit-* headers report the most constraining limits, on forwarded responses and on
// 429s alike.
func WithLimits(l limits.Limiter, m *metrics.Metrics, log *slog.Logger, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		req := limits.Request{Keys: ex.limitKeys(), Model: ex.Decision.Model, Force: ex.Policy.Config.ShadowMode}
		if r.URL.Path == "/v1/messages" && ex.Decision.Fields.HasMaxTokens {
			req.InputTokens = decide.EstimateInputTokens(ex.Body)
			req.MaxInputTokens = int64(len(ex.Body))
			req.OutputTokens = ex.Decision.Fields.MaxTokens
		}
		if ex.requestsHeld {
			req.Phase = limits.PhaseTokens
		}
		res, ok := reserve(w, r, l, m, log, req)
		if !ok {
			return
		}
		if res != nil && res.Exceeded() != nil {
			ex.refuse(w, limitDenial(m, res.Exceeded(), true), false, 0)
			log.Info("Shadow mode: request would have been rate limited", "rule", res.Exceeded().Rule)
		}
		if res != nil {
			setRateLimitHeaders(w.Header(), res.Status())
			defer settle(l, m, log, res, req, r) // deferred: a broken stream unwinds with http.ErrAbortHandler
		}
		next.ServeHTTP(w, r)
	})
}

// reserve takes req's reservation. It answers the request itself and returns false when a limit
// refuses it (429 with the rate-limit headers, and a retry hint when the window resets soon and the
// request can fit at all) or the limiter is unavailable and the policy fails closed. A nil reservation
// with true means the limiter is unavailable and the policy fails open.
func reserve(w http.ResponseWriter, r *http.Request, l limits.Limiter, m *metrics.Metrics, log *slog.Logger, req limits.Request) (*limits.Reservation, bool) {
	ex := FromContext(r.Context())
	res, err := l.Reserve(r.Context(), req)
	var denied *limits.Denied
	switch {
	case errors.As(err, &denied):
		// Set before anything is written: the forwarder adds the upstream's headers to these.
		setRateLimitHeaders(w.Header(), denied.Status)
		retry := !denied.Never && denied.RetryAfter <= time.Minute
		ex.refuse(w, limitDenial(m, denied, false), retry, denied.RetryAfter)
		return nil, false
	case err != nil:
		return nil, limiterUnavailable(w, r, ex, m, log, err)
	}
	return res, true
}

// preBodyMinBytes is the body size from which a request's count is reserved before its body is read:
// below it, buffering the body costs less than a second round trip to a shared limiter.
const preBodyMinBytes = 1 << 20

// WithRequestCount reserves a large request's count before its body is read (limits.PhaseRequests),
// so a client over its request limit, or whose budget is spent, is refused without the sidecar
// buffering what it sends, and without taking a share of the body budget. The rest of the reservation
// (tokens, Session rules) is taken by WithLimits once the body is read. Bodies under preBodyMinBytes,
// and shadow mode, keep the one reservation.
func WithRequestCount(l limits.Limiter, m *metrics.Metrics, log *slog.Logger, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := FromContext(r.Context())
		if ex.Policy.Config.ShadowMode || (r.ContentLength >= 0 && r.ContentLength < preBodyMinBytes) {
			next.ServeHTTP(w, r)
			return
		}
		// The session is not known yet (it may be in the body); Session rules wait for PhaseTokens.
		res, ok := reserve(w, r, l, m, log, limits.Request{Keys: ex.limitKeys(), Phase: limits.PhaseRequests})
		if !ok {
			return
		}
		if res != nil { // nil: failing open, and WithLimits reserves everything (or fails open too)
			ex.requestsHeld = true
			defer settleCount(l, m, log, res, r)
		}
		next.ServeHTTP(w, r)
	})
}

// settleCount ends a PhaseRequests reservation: the count stands once the request was forwarded (with
// no usage: its tokens settle on WithLimits' reservation), and is returned if it never reached the
// upstream.
func settleCount(l limits.Limiter, m *metrics.Metrics, log *slog.Logger, res *limits.Reservation, r *http.Request) {
	ex := FromContext(r.Context())
	ctx := context.WithoutCancel(r.Context())
	op, err := "settle", error(nil)
	if !ex.Upstream.Forwarded || ex.Upstream.Unanswered {
		op, err = "refund", l.Refund(ctx, res)
	} else {
		err = l.Settle(ctx, res, usage.Usage{})
	}
	releaseFailed(m, log, op, r, "", err)
}

// releaseFailed counts and logs a settle or refund that failed (nothing when err is nil). The response
// is already sent, so a limiter failure cannot change it; what stays held is released when its window
// ends.
func releaseFailed(m *metrics.Metrics, log *slog.Logger, op string, r *http.Request, model string, err error) {
	if err == nil {
		return
	}
	if m != nil {
		m.LimiterErrors.WithLabelValues(op).Inc()
	}
	log.Error("Failed to release a rate limit reservation", "op", op, "path", r.URL.Path, "model", model, "error", err)
}

// limitDenial is a limit's refusal as the proxy's denial, counted.
func limitDenial(m *metrics.Metrics, d *limits.Denied, shadow bool) *decide.Denial {
	if m != nil {
		m.LimiterRejected.WithLabelValues(d.Rule).Inc()
	}
	return &decide.Denial{Rule: "limits/" + d.Rule, Status: http.StatusTooManyRequests, Type: decide.TypeRateLimit,
		Message: fmt.Sprintf("claude-guard: %s (rule limits %q)", d.Error(), d.Rule), Shadow: shadow}
}

// limiterUnavailable handles a limiter that could not answer: the policy's failure mode refuses the
// request (false) or lets it through unmetered (true).
func limiterUnavailable(w http.ResponseWriter, r *http.Request, ex *Exchange, m *metrics.Metrics, log *slog.Logger, err error) bool {
	if m != nil {
		m.LimiterErrors.WithLabelValues("reserve").Inc()
	}
	// A shared backend logs each outage once (ErrUnavailable); anything else is logged here.
	lvl := slog.LevelWarn
	if errors.Is(err, limits.ErrUnavailable) {
		lvl = slog.LevelDebug
	}
	if ex.Policy.Config.Limits.FailureMode == policyconfig.FailOpen {
		log.Log(r.Context(), lvl, "Rate limiter unavailable, failing open", "error", err)
		return true
	}
	log.Log(r.Context(), lvl, "Rate limiter unavailable, refusing the request", "error", err)
	ex.refuse(w, &decide.Denial{Rule: "limits", Status: http.StatusServiceUnavailable, Type: decide.TypeAPI,
		Message: "claude-guard: the rate limiter is unavailable, so the policy (failureMode FailClosed) refuses requests; retry shortly"}, true, time.Second)
	return false
}

// settle settles or refunds a reservation once the response is done. The response is already sent, so
// a limiter failure cannot change it: it is logged and counted (what stays held is released when its
// window ends). It runs before the handler returns, on purpose: net/http holds a short response (and
// the last chunk of a stream) until then, so a client that sends its next request after reading this
// one finds this one settled. Flushing first would save the client the settle's round trip but let its
// next request see the whole reservation and be refused.
func settle(l limits.Limiter, m *metrics.Metrics, log *slog.Logger, res *limits.Reservation, req limits.Request, r *http.Request) {
	ex := FromContext(r.Context())
	// A context that outlives the client: the reservation must be released.
	ctx := context.WithoutCancel(r.Context())
	op, err := "refund", error(nil)
	if !ex.Upstream.Forwarded || ex.Upstream.Unanswered {
		err = l.Refund(ctx, res)
	} else {
		if st := ex.w.status; !ex.Upstream.UsageSeen && (ex.ClientAborted || r.Context().Err() != nil) && st < 300 {
			// The client left before any response arrived: the upstream has the prompt and may have
			// generated up to max_tokens, so the reservation stands.
			ex.chargeReserved()
		}
		u := ex.Upstream.Usage
		op, err = "settle", l.Settle(ctx, res, u)
		countSpend(m, ex, res.CostMicroUSD(u))
	}
	releaseFailed(m, log, op, r, req.Model, err)
}

// countSpend adds a settled request's cost to claude_guard_spend_usd_total. The model label is the
// upstream-accepted model only (as for the other metrics), so clients cannot grow the label set.
func countSpend(m *metrics.Metrics, ex *Exchange, microUSD int64) {
	if m == nil || microUSD <= 0 {
		return
	}
	model := ex.modelLabel(ex.w.code())
	ns := ex.Caller.Namespace
	if ns == "" {
		ns = ex.Policy.Config.Policy.Namespace
	}
	m.Spend.WithLabelValues(ns, ex.Policy.Config.Policy.Tenant, model).Add(float64(microUSD) / 1e6)
}

// meter watches a response body as it is copied to the client, reading usage from it.
type meter struct {
	rc   io.ReadCloser
	ex   *Exchange
	sse  *usage.Stream
	json *bytes.Buffer
	// ok is set for a 2xx Messages response, the only kind the upstream bills; jsonTooLarge when its
	// JSON body outgrew the copy kept to read usage.
	ok, jsonTooLarge bool
	done             bool
}

// maxJSONUsageBody bounds the copy of a JSON response kept to read its usage.
const maxJSONUsageBody = 8 << 20

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.rc.Read(p)
	if n > 0 {
		switch {
		case m.sse != nil:
			if m.ex.Upstream.FirstChunk == 0 {
				m.ex.Upstream.FirstChunk = time.Since(m.ex.Start)
			}
			_, _ = m.sse.Write(p[:n]) // usage.Stream.Write never fails
		case m.json != nil:
			if m.json.Len()+n <= maxJSONUsageBody {
				m.json.Write(p[:n])
			} else {
				m.json, m.jsonTooLarge = nil, true
			}
		}
	}
	if err == io.EOF {
		m.finish()
	}
	return n, err
}

func (m *meter) Close() error {
	m.finish()
	return m.rc.Close()
}

// Where a settled usage came from when the response did not report it whole (audit usageSource).
const (
	UsageEstimated = "estimate" // an incomplete stream: output estimated from what was streamed
	UsageReserved  = "reserved" // no usable report: output charged at the request's max_tokens
)

func (m *meter) finish() {
	if m.done {
		return
	}
	m.done = true
	up := &m.ex.Upstream
	switch {
	case m.sse != nil:
		up.Usage, up.UsageSeen, up.StreamError = m.sse.Usage, m.sse.Seen, m.sse.ErrorType
		if !m.sse.Complete && m.ok {
			// Cut before message_stop: message_start reported 1 output token, the API bills what
			// it generated. Charge what was streamed, or the whole max_tokens if nothing was.
			if m.sse.DeltaBytes > 0 {
				up.Usage.OutputTokens, up.UsageSource = m.sse.EstimateOutput(), UsageEstimated
			} else {
				m.ex.chargeReserved()
			}
		}
	case m.json != nil:
		up.Usage, up.UsageSeen = usage.FromJSON(m.json.Bytes())
		if !up.UsageSeen && m.ok {
			m.ex.chargeReserved() // a 200 whose body was cut before its usage
		}
	case m.jsonTooLarge && m.ok:
		m.ex.chargeReserved() // a body too large to keep for its usage
	}
}

// chargeReserved settles a Messages response without usable usage at its max_tokens (and the
// reserved input estimate), the most it can have cost.
func (ex *Exchange) chargeReserved() {
	f := &ex.Decision.Fields
	if !ex.Upstream.Messages || !f.HasMaxTokens {
		return
	}
	up := &ex.Upstream
	up.Usage.OutputTokens = max(up.Usage.OutputTokens, f.MaxTokens)
	up.Usage.InputTokens = max(up.Usage.InputTokens, decide.EstimateInputTokens(ex.Body))
	up.UsageSeen, up.UsageSource = true, UsageReserved
}
