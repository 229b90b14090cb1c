package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/metrics"
)

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
	status, up := ex.w.code(), &ex.Upstream
	ep := endpointLabel(r.URL.Path)
	// The model label is client-chosen text: use it only once the upstream accepted it as a model, so
	// a client cannot grow the label set without bound.
	model := "-"
	if ex.Decision.Model != "" {
		model = "other"
		if up.Forwarded && status < 400 {
			model = ex.Decision.Model
		}
	}
	stream := strconv.FormatBool(ex.Decision.Fields.Stream)
	m.Requests.WithLabelValues(ep, ex.decisionLabel(), model, strconv.Itoa(status)).Inc()
	m.Duration.WithLabelValues(ep, stream).Observe(time.Since(ex.Start).Seconds())
	if up.Forwarded && up.Latency > 0 {
		m.UpstreamDuration.WithLabelValues(ep, stream).Observe(up.Latency.Seconds())
	}
	if eu := ex.Caller.EndUser(); eu != "" && ex.Policy.Config.Audit.EndUserMetricLabel {
		m.EndUserRequests.WithLabelValues(eu, ex.decisionLabel()).Inc()
		if up.UsageSeen {
			m.EndUserTokens.WithLabelValues(eu, "input").Add(float64(up.Usage.TotalInput()))
			m.EndUserTokens.WithLabelValues(eu, "output").Add(float64(up.Usage.OutputTokens))
		}
	}
	if up.UsageSeen {
		u := up.Usage
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
