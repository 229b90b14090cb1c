//go:build integration

// Package telemetry tests the sidecar's observability end to end against real servers: an
// OpenTelemetry Collector (hack/otelcol.sh) receives the sidecar's OTLP and forwards metrics to a real
// Prometheus (hack/prometheus.sh, OTLP receiver on) and spans to a trace sink; the same Prometheus
// scrapes the sidecar's /metrics with its metrics token. After traffic that allows, streams, denies,
// exhausts a limit and rides out a Redis outage, the test asserts the metric names and attributes that
// arrived by both paths, the spans and their links to the caller's and upstream's trace, and runs every
// PromQL query of the shipped Grafana dashboard, failing on any that returns no series.
package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/test/otlpsink"
	"github.com/claude-guard/claude-guard/internal/test/ports"
	"github.com/claude-guard/claude-guard/internal/test/repo"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/app"
	"github.com/claude-guard/claude-guard/sidecar/app/apptest"
)

const (
	upstreamKey  = "sk-ant-api03-telemetry-test-key"
	metricsToken = "metrics-token-telemetry-test"
	prompt       = "a prompt that must never reach telemetry"
	scrapeJob    = "sidecar-scrape"
	// The caller's trace: the sidecar's span must be its child.
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// stack is the servers and the sidecar of one run.
type stack struct {
	fake  *fakeupstream.Server
	redis *testservers.Redis
	prom  *testservers.Prometheus
	sink  *otlpsink.Sink
	proxy string
	logs  *logbuf.Buffer
}

func start(t *testing.T) *stack {
	s := &stack{fake: fakeupstream.New(upstreamKey), logs: &logbuf.Buffer{}}
	s.fake.Record = true
	up := httptest.NewServer(s.fake)
	t.Cleanup(up.Close)
	s.redis = testservers.StartRedis(t, testservers.RedisOptions{})
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(port)
	s.sink = otlpsink.Start(t)
	s.prom = testservers.StartPrometheus(t, testservers.ScrapeTarget{Job: scrapeJob, Addr: metricsAddr, BearerToken: metricsToken})
	col := testservers.StartCollector(t, testservers.CollectorOptions{MetricsTo: s.prom.OTLPMetricsURL, TracesTo: s.sink.URL})

	// What the injector sets (inject.Telemetry), with short intervals for the test.
	for k, v := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": col.Endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_SERVICE_NAME": wellknown.SidecarServiceName, "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_BSP_SCHEDULE_DELAY": "100",
		"POD_NAME": "chat-0", "POD_NAMESPACE": "team-a",
	} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "api-key")
	cfg := fmt.Sprintf(`apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
policy: {namespace: team-a, name: chat, tenant: acme}
server: {upstream: %q, metricsTokenSHA256: %q}
credentials: {file: {path: %q}}
models: {allow: ["claude-haiku-*"]}
prices: [{model: "claude-haiku-*", inputUSD: "1", outputUSD: "5"}]
budgets: [{name: monthly, key: Namespace, window: Month, usd: "100"}]
limits:
  backend: Redis
  failureMode: FailOpen
  redisURL: %q
  rules: [{name: per-minute, key: Workload, window: Minute, requests: 9}]
`, up.URL, policyconfig.MetricsTokenHash(metricsToken), keyFile, "redis://"+s.redis.Addr+"/0")
	for name, content := range map[string]string{"config.yaml": cfg, "api-key": upstreamKey} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.proxy, _ = apptest.Start(t, &app.Options{ConfigPath: filepath.Join(dir, "config.yaml"), Listen: "127.0.0.1:0", MetricsListen: metricsAddr,
		Workload: "team-a/chat", ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info", Stdout: s.logs})
	return s
}

func (s *stack) client(opts ...option.RequestOption) anthropic.Client {
	return anthropic.NewClient(append([]option.RequestOption{option.WithBaseURL("http://" + s.proxy),
		option.WithAPIKey(wellknown.PlaceholderAPIKey), option.WithMaxRetries(0)}, opts...)...)
}

func message(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{Model: model, MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))}}
}

// traffic is what a platform team's dashboard must show: allowed calls (one inside the caller's
// trace), streams, a refused model, a limit run out, and calls during a Redis outage.
func (s *stack) traffic(t *testing.T) {
	ctx := context.Background()
	c := s.client()
	traced := s.client(option.WithHeader("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01"))
	if _, err := traced.Messages.New(ctx, message("claude-haiku-4-5")); err != nil {
		t.Fatalf("traced call: %v", err)
	}
	for range 2 {
		if _, err := c.Messages.New(ctx, message("claude-haiku-4-5")); err != nil {
			t.Fatalf("call: %v", err)
		}
		st := c.Messages.NewStreaming(ctx, message("claude-haiku-4-5"))
		for st.Next() {
		}
		if err := st.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
	}
	if _, err := c.Messages.New(ctx, message("claude-opus-4-1")); err == nil {
		t.Fatal("a model outside the allow list was served")
	}
	// 6 calls so far count against per-minute (9): the next ones run it out.
	refused := 0
	for range 6 {
		if _, err := c.Messages.New(ctx, message("claude-haiku-4-5")); err != nil {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("the per-minute limit refused nothing")
	}
	// An outage: the policy fails open, so calls are served by the sidecar's local counters.
	s.redis.Stop()
	_, _ = c.Messages.New(ctx, message("claude-haiku-4-5"))
	s.redis.Start(t)
}

func TestTelemetryEndToEnd(t *testing.T) {
	s := start(t)
	s.traffic(t)
	ctx := context.Background()

	t.Run("GenAI metrics arrive over OTLP through the collector", func(t *testing.T) {
		// Pushed series carry job = service.name and the promoted resource attributes.
		sel := `{job="` + wellknown.SidecarServiceName + `",k8s_namespace_name="team-a",k8s_pod_name="chat-0"}`
		for _, q := range []string{
			`gen_ai_client_token_usage_sum` + sel,
			`gen_ai_client_operation_duration_seconds_count` + sel,
			`gen_ai_client_operation_time_to_first_chunk_seconds_count` + sel,
		} {
			waitSeries(t, s.prom, q)
		}
		series := waitSeries(t, s.prom, `gen_ai_client_token_usage_sum`+strings.Replace(sel, "}", `,gen_ai_token_type="input"}`, 1))
		l := series[0].Labels
		want := map[string]string{"gen_ai_operation_name": "chat", "gen_ai_provider_name": "anthropic", "gen_ai_request_model": "claude-haiku-4-5",
			"gen_ai_response_model": "claude-haiku-4-5", "claude_guard_namespace": "team-a", "claude_guard_policy": "chat", "claude_guard_tenant": "acme",
			"claude_guard_decision": "allow"}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("OTLP series label %s = %q, want %q (labels %v)", k, l[k], v, l)
			}
		}
		denied := waitSeries(t, s.prom, `gen_ai_client_operation_duration_seconds_count{job="`+wellknown.SidecarServiceName+`",claude_guard_rule="limits/policy/per-minute"}`)
		if denied[0].Labels["claude_guard_decision"] != "deny" || denied[0].Labels["error_type"] != "429" {
			t.Errorf("limit denial labels %v, want decision deny and error.type 429", denied[0].Labels)
		}
	})

	t.Run("the same metrics are scraped from /metrics with the metrics token", func(t *testing.T) {
		waitSeries(t, s.prom, `up{job="`+scrapeJob+`"} == 1`)
		waitSeries(t, s.prom, `gen_ai_client_token_usage_sum{job="`+scrapeJob+`",gen_ai_token_type="output",claude_guard_tenant="acme"}`)
		waitSeries(t, s.prom, `claude_guard_spend_usd_total{job="`+scrapeJob+`",namespace="team-a",tenant="acme",model="claude-haiku-4-5"} > 0`)
	})

	t.Run("spans join the caller's trace and parent the upstream call", func(t *testing.T) {
		var span otlpsink.Span
		wait.For(t, 30*time.Second, "the traced call's span at the sink", func() error {
			for _, sp := range s.sink.Spans() {
				if sp.TraceID == callerTrace {
					span = sp
					return nil
				}
			}
			return fmt.Errorf("%d spans, none in trace %s", len(s.sink.Spans()), callerTrace)
		})
		if span.ParentSpanID != callerSpan || span.Kind != "SPAN_KIND_CLIENT" || span.Name != "chat claude-haiku-4-5" {
			t.Errorf("span %+v, want a client span \"chat claude-haiku-4-5\" under the caller's span %s", span, callerSpan)
		}
		for k, v := range map[string]string{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-haiku-4-5",
			"claude_guard.decision": "allow", "claude_guard.namespace": "team-a", "http.response.status_code": "200", "gen_ai.request.max_tokens": "64"} {
			if span.Attributes[k] != v {
				t.Errorf("span attribute %s = %q, want %q", k, span.Attributes[k], v)
			}
		}
		if span.Attributes["gen_ai.usage.output_tokens"] == "" || span.Resource["service.name"] != wellknown.SidecarServiceName || span.Resource["k8s.pod.name"] != "chat-0" {
			t.Errorf("span usage or resource missing: %+v", span)
		}
		// The upstream saw the sidecar's span as its parent, not the caller's.
		want := "00-" + callerTrace + "-" + span.SpanID + "-01"
		found := false
		for _, r := range s.fake.Requests() {
			if r.Header.Get("Traceparent") == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no upstream request carried traceparent %s", want)
		}
		for _, sp := range s.sink.Spans() {
			b, _ := json.Marshal(sp)
			for _, secret := range []string{prompt, upstreamKey, metricsToken} {
				if strings.Contains(string(b), secret) {
					t.Fatalf("a span carries %q: %s", secret, b)
				}
			}
		}
	})

	t.Run("every dashboard panel returns series", func(t *testing.T) {
		// Wait for the scrape that follows the Redis outage, so rates span at least two samples.
		waitSeries(t, s.prom, `claude_guard_limiter_fail_open_total{job="`+scrapeJob+`"}`)
		time.Sleep(3 * time.Second)
		d := loadDashboard(t)
		for _, v := range d.variables() {
			if got, err := s.prom.Query(ctx, v.promql); err != nil || len(got) == 0 {
				t.Errorf("variable %s (%s): no values (%v)", v.name, v.query, err)
			}
		}
		// Every query must be valid PromQL; every panel must show something (a panel whose error
		// series is empty still shows its fail-open series).
		series := map[string]int{}
		for _, p := range d.queries() {
			got, err := s.prom.Query(ctx, p.promql)
			if err != nil {
				t.Errorf("panel %q query %s: %v", p.panel, p.ref, err)
			}
			series[p.panel] += len(got)
		}
		for _, p := range d.queries() {
			if series[p.panel] == 0 {
				t.Errorf("panel %q returned no series (query %s: %s)", p.panel, p.ref, p.promql)
			}
		}
	})

	if t.Failed() {
		t.Logf("sidecar log:\n%s", s.logs.String())
	}
}

// waitSeries waits up to 30 s for an instant query to return series, and returns them.
func waitSeries(t *testing.T, p *testservers.Prometheus, q string) []testservers.Series {
	t.Helper()
	var out []testservers.Series
	wait.For(t, 30*time.Second, q, func() error {
		got, err := p.Query(context.Background(), q)
		if err != nil {
			return err
		}
		if len(got) == 0 {
			return fmt.Errorf("no series")
		}
		out = got
		return nil
	})
	return out
}

// dashboard is the shipped Grafana dashboard, as much of its JSON as the test reads.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo.Root(), "charts", "claude-guard", "dashboards", "claude-guard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	return &d
}

type panelQuery struct{ panel, ref, promql string }

// grafanaVars are what Grafana puts for the dashboard's variables: every value, and fixed windows.
var grafanaVars = strings.NewReplacer(`"$namespace"`, `".*"`, `"$tenant"`, `".*"`, `"$model"`, `".*"`,
	"$__rate_interval", "1m", "$__range", "10m")

func (d *dashboard) queries() []panelQuery {
	var out []panelQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{p.Title, tg.RefID, grafanaVars.Replace(tg.Expr)})
		}
	}
	return out
}

type variable struct{ name, query, promql string }

// variables turns each query variable's label_values(metric, label) into a PromQL query for the
// label's values.
func (d *dashboard) variables() []variable {
	var out []variable
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		inner := strings.TrimSuffix(strings.TrimPrefix(s, "label_values("), ")")
		metric, label, _ := strings.Cut(inner, ", ")
		out = append(out, variable{v.Name, s, fmt.Sprintf("count by (%s) (%s)", label, metric)})
	}
	return out
}
