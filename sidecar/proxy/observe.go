package proxy

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// WithMetrics counts the request and observes its latency and tokens when it is done, in the Prometheus
// metrics and the OpenTelemetry ones (tel), and traces it as a client span when tel traces.
func WithMetrics(m *metrics.Metrics, tel *telemetry.Telemetry, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.InFlight.Inc()
		// Deferred: ReverseProxy aborts a broken stream by panicking with http.ErrAbortHandler, and an
		// aborted request must still be counted.
		defer m.InFlight.Dec()
		var span trace.Span // nil without tracing
		if tel.Tracing() {
			var ctx context.Context
			ctx, span = tel.Start(r)
			r = r.WithContext(ctx)
		}
		defer observe(m, tel, span, r)
		next.ServeHTTP(w, r)
	})
}

// observe records the finished request in both kinds of metrics and ends its span, if it has one, from
// one reading of the exchange.
func observe(m *metrics.Metrics, tel *telemetry.Telemetry, span trace.Span, r *http.Request) {
	ex := FromContext(r.Context())
	status, up, elapsed := ex.w.code(), &ex.Upstream, time.Since(ex.Start)
	ep := endpointLabel(r.URL.Path)
	model := ex.modelLabel(status)
	call := ex.genAICall(r, status, elapsed)
	if call != nil {
		tel.Record(r.Context(), call)
	}
	if span != nil {
		telemetry.End(span, r.Method+" "+ep, status, call)
	}
	stream := strconv.FormatBool(ex.Decision.Fields.Stream)
	m.Requests.WithLabelValues(ep, ex.decisionLabel(), model, strconv.Itoa(status)).Inc()
	m.Duration.WithLabelValues(ep, stream).Observe(elapsed.Seconds())
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

// modelLabel is the model as metrics name it. The model is client-chosen text: it is used only once the
// upstream accepted it as a model, so a client cannot grow the label set without bound; "other" stands
// for every refused or failed one and "-" for requests that name none.
func (ex *Exchange) modelLabel(status int) string {
	switch {
	case ex.Decision.Model == "":
		return "-"
	case ex.Upstream.Forwarded && status < 400:
		return ex.Decision.Model
	default:
		return "other"
	}
}

// genAICall is a Messages request as the GenAI telemetry records it; nil for other requests, which are
// not GenAI operations (count_tokens, the models list).
func (ex *Exchange) genAICall(r *http.Request, status int, elapsed time.Duration) *telemetry.Call {
	if r.URL.Path != policyconfig.PathMessages {
		return nil
	}
	up, p := &ex.Upstream, &ex.Policy.Config.Policy
	model := ex.modelLabel(status)
	if model == "-" {
		model = ""
	}
	rule, _ := ex.rule()
	c := &telemetry.Call{
		Operation: telemetry.OperationChat, Model: model,
		Namespace: ex.Caller.Namespace, Policy: p.Name, Tenant: p.Tenant, Decision: ex.decisionLabel(), Rule: rule,
		Status: status, Stream: ex.Decision.Fields.Stream, MaxTokens: ex.Decision.Fields.MaxTokens,
		Duration: elapsed, FirstChunk: up.FirstChunk, RequestID: up.RequestID,
	}
	if up.UsageSeen {
		c.UsageSeen, c.InputTokens, c.OutputTokens = true, up.Usage.TotalInput(), up.Usage.OutputTokens
	}
	return c
}
