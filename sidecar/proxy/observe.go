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
