package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"
)

func newForTest(t *testing.T) (*Telemetry, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	tel, err := New(context.Background(), Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, reg
}

func TestRecordExportsGenAIMetricsOnPrometheus(t *testing.T) {
	tel, reg := newForTest(t)
	ctx := context.Background()
	tel.Record(ctx, &Call{Operation: OperationChat, Model: "claude-sonnet-4-5", Namespace: "team-a", Policy: "default",
		Tenant: "acme", Decision: "allow", Status: 200, Stream: true, UsageSeen: true, InputTokens: 120, OutputTokens: 30,
		Duration: 1500 * time.Millisecond, FirstChunk: 200 * time.Millisecond})
	tel.Record(ctx, &Call{Operation: OperationChat, Model: "other", Namespace: "team-a", Policy: "default",
		Decision: "deny", Rule: "models", Status: 403, Duration: time.Millisecond})

	families := gather(t, reg)
	usage := families["gen_ai_client_token_usage"]
	if usage == nil {
		t.Fatalf("no gen_ai_client_token_usage; families: %v", keys(families))
	}
	want := map[string]float64{"input": 120, "output": 30}
	for _, m := range usage.GetMetric() {
		l := labelsOf(m)
		if l["gen_ai_request_model"] != "claude-sonnet-4-5" || l["gen_ai_provider_name"] != "anthropic" ||
			l["gen_ai_operation_name"] != "chat" || l["claude_guard_tenant"] != "acme" || l["claude_guard_namespace"] != "team-a" {
			t.Errorf("token usage labels = %v", l)
		}
		if got := m.GetHistogram().GetSampleSum(); got != want[l["gen_ai_token_type"]] {
			t.Errorf("token usage %s = %v, want %v", l["gen_ai_token_type"], got, want[l["gen_ai_token_type"]])
		}
	}
	if n := len(usage.GetMetric()); n != 2 {
		t.Errorf("token usage has %d series, want input and output only (the denied call reported no usage)", n)
	}
	dur := families["gen_ai_client_operation_duration_seconds"]
	if dur == nil || len(dur.GetMetric()) != 2 {
		t.Fatalf("operation duration series = %v, want one per call", dur)
	}
	for _, m := range dur.GetMetric() {
		l := labelsOf(m)
		if l["claude_guard_decision"] == "deny" && (l["claude_guard_rule"] != "models" || l["error_type"] != "403") {
			t.Errorf("denied call labels = %v, want rule models and error.type 403", l)
		}
	}
	ttfc := families["gen_ai_client_operation_time_to_first_chunk_seconds"]
	if ttfc == nil || len(ttfc.GetMetric()) != 1 || ttfc.GetMetric()[0].GetHistogram().GetSampleSum() != 0.2 {
		t.Errorf("time to first chunk = %v, want the one stream at 0.2 s", ttfc)
	}
}

func TestLintOfExportedMetrics(t *testing.T) {
	tel, reg := newForTest(t)
	tel.Record(context.Background(), &Call{Operation: OperationChat, Model: "m", Decision: "allow", Status: 200, UsageSeen: true, Duration: time.Second})
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestNoTracingWithoutAnEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tel, _ := newForTest(t)
	r := httptest.NewRequest(http.MethodPost, "/v1/messages", nil)
	r.Header.Set("Traceparent", callerParent)
	if tel.Tracing() {
		t.Fatal("tracing without an OTLP endpoint")
	}
	out := http.Header{"Traceparent": {callerParent}}
	ctx, _ := tel.Start(r)
	tel.Inject(ctx, out)
	if got := out.Get("Traceparent"); got != callerParent {
		t.Errorf("without tracing the caller's traceparent must pass unchanged, got %q", got)
	}
}

const callerParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestSpanJoinsTheCallersTraceAndIsPropagated(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.URL+"/v1/traces")
	tel, _ := newForTest(t)
	if !tel.Tracing() {
		t.Fatal("no tracing with a traces endpoint")
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/messages", nil)
	r.Header.Set("Traceparent", callerParent)
	ctx, span := tel.Start(r)
	sc := span.SpanContext()
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("span trace id %s, want the caller's", sc.TraceID())
	}
	out := http.Header{"Traceparent": {callerParent}}
	tel.Inject(ctx, out)
	parts := strings.Split(out.Get("Traceparent"), "-")
	if len(parts) != 4 || parts[1] != sc.TraceID().String() || parts[2] != sc.SpanID().String() || parts[2] == "00f067aa0ba902b7" {
		t.Errorf("upstream traceparent %q, want the caller's trace with the sidecar's span %s", out.Get("Traceparent"), sc.SpanID())
	}
	if got := trace.SpanFromContext(ctx).SpanContext(); !got.Equal(sc) {
		t.Error("the context does not carry the span")
	}
	End(span, "POST /v1/messages", 200, &Call{Operation: OperationChat, Model: "m", Decision: "allow", Status: 200})
}

func TestAttributeSetsAreCachedUpToTheBound(t *testing.T) {
	var c attrCache
	k := setKey{call: labels{operation: "chat", model: "m"}}
	if a, b := c.get(k), c.get(k); !a.Equals(&b) || c.n != 1 {
		t.Fatalf("same labels gave different sets or %d entries", c.n)
	}
	for i := range maxCachedSets + 10 {
		c.get(setKey{call: labels{rule: strings.Repeat("r", i+1)}})
	}
	if c.n != maxCachedSets {
		t.Errorf("cache holds %d sets, want the bound %d", c.n, maxCachedSets)
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func keys(m map[string]*dto.MetricFamily) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
