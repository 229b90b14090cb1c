package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/audit"
	"github.com/claude-guard/claude-guard/sidecar/config"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

const realKey = "sk-ant-api03-REAL-KEY-never-logged"

const baseConfig = `
apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
policy: {namespace: team-a, name: chat}
credentials: {env: {name: UNUSED}}
models:
  allow: ["claude-haiku-*", "claude-sonnet-4-5"]
  deny: ["claude-haiku-3*"]
  aliases: {fast: claude-haiku-4-5}
  maxTokens:
  - {model: "claude-sonnet-*", limit: 8192, action: Reject}
  - {model: "claude-haiku-*", limit: 4096, action: Clamp}
`

// env is a fake upstream, a sidecar in front of it, and an SDK client pointed at the sidecar.
type env struct {
	fake    *fakeupstream.Server
	up      *httptest.Server
	srv     *httptest.Server
	client  anthropic.Client
	audit   *syncBuffer
	auditL  *audit.Logger
	logs    *syncBuffer
	metrics *metrics.Metrics
	creds   *countingSource
}

// syncBuffer collects a log or the audit trail; flush, when set, writes out the audit logger's buffer.
type syncBuffer struct {
	logbuf.Buffer
	flush func()
}

// records decodes the audit lines.
// waitRecords waits up to 5 s for at least n records (one is written after its handler returns) and
// returns them.
func (s *syncBuffer) waitRecords(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.records(t)) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return s.records(t)
}

func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	if s.flush != nil {
		s.flush()
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

type countingSource struct {
	credentials.Source
	invalidated atomic.Int64
}

func (c *countingSource) Invalidate() { c.invalidated.Add(1); c.Source.Invalidate() }

// newEnv starts the environment; opts may replace parts of the proxy's options.
func newEnv(t *testing.T, extraConfig string, opts ...func(*proxy.Options)) *env {
	t.Helper()
	e := &env{fake: fakeupstream.New(realKey), audit: &syncBuffer{}, logs: &syncBuffer{}, metrics: metrics.New()}
	e.fake.Record = true
	e.up = httptest.NewServer(e.fake)
	t.Cleanup(e.up.Close)
	cfg, err := config.Compile([]byte(baseConfig+extraConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	store := config.NewStore(cfg)
	upURL, _ := url.Parse(e.up.URL)
	e.creds = &countingSource{Source: credentials.Static(realKey)}
	e.auditL = audit.New(e.audit)
	t.Cleanup(e.auditL.Close)
	e.audit.flush = e.auditL.Flush
	o := proxy.Options{
		Upstream:    upURL,
		Policy:      store.Policy,
		Credentials: e.creds,
		Limiter:     limits.NewMemory(cfg.Rules),
		Audit:       e.auditL,
		Metrics:     e.metrics,
		Log:         slog.New(slog.NewJSONHandler(e.logs, nil)),
		Workload:    "team-a/chat-7d9f",
	}
	for _, opt := range opts {
		opt(&o)
	}
	h := proxy.New(o)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	// The app's SDK holds only the placeholder key, as an injected pod's would.
	e.client = anthropic.NewClient(option.WithBaseURL(e.srv.URL), option.WithAPIKey(wellknown.PlaceholderAPIKey), option.WithMaxRetries(0))
	t.Cleanup(func() { e.assertNoSecrets(t) })
	return e
}

// assertNoSecrets checks that no key or prompt reached a log, an audit record or a metric.
func (e *env) assertNoSecrets(t *testing.T) {
	var m bytes.Buffer
	mf, _ := e.metrics.Registry.Gather()
	for _, f := range mf {
		fmt.Fprint(&m, f.String())
	}
	for name, text := range map[string]string{"audit": e.audit.String(), "logs": e.logs.String(), "metrics": m.String()} {
		for _, secret := range []string{realKey, wellknown.PlaceholderAPIKey, "SECRET-PROMPT", "Bearer user-token"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains %q", name, secret)
			}
		}
	}
}

func userMsg(text string) []anthropic.MessageParam {
	return []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}
}

func TestSDKMessages(t *testing.T) {
	e := newEnv(t, "")
	msg, err := e.client.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: anthropic.ModelClaudeHaiku4_5, MaxTokens: 1024, Messages: userMsg("SECRET-PROMPT hello"),
	}, option.WithHeader("Authorization", "Bearer user-token"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := msg.Content[0].Text, strings.Join(fakeupstream.Text(3), ""); got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	if msg.Usage.OutputTokens != 12 || msg.Usage.CacheReadInputTokens != 5 {
		t.Errorf("usage = %+v", msg.Usage)
	}
	if !strings.Contains(msg.RawJSON(), `"x_unknown_future_field"`) {
		t.Errorf("unknown response field was dropped: %s", msg.RawJSON())
	}
	reqs := e.fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	h := reqs[0].Header
	if h.Get("X-Api-Key") != realKey || len(h.Values("X-Api-Key")) != 1 {
		t.Errorf("upstream x-api-key = %v, want the injected key only", h.Values("X-Api-Key"))
	}
	if h.Get("Authorization") != "" {
		t.Errorf("client Authorization reached the upstream")
	}
	if h.Get("Anthropic-Version") == "" {
		t.Errorf("anthropic-version = %q", h.Get("Anthropic-Version"))
	}
	recs := e.audit.records(t)
	if len(recs) != 1 {
		t.Fatalf("want 1 audit record, got %d", len(recs))
	}
	r := recs[0]
	for k, want := range map[string]any{"decision": "allow", "model": "claude-haiku-4-5", "status": 200.0, "outputTokens": 12.0,
		"cacheReadInputTokens": 5.0, "cacheCreationInputTokens": 3.0, "policy": "team-a/chat", "workload": "team-a/chat-7d9f",
		"upstreamRequestId": "req_fake_000001"} {
		if r[k] != want {
			t.Errorf("audit %s = %v, want %v", k, r[k], want)
		}
	}
}

// TestSDKStreaming checks that the stream the SDK accumulates through the sidecar equals the one it
// accumulates from the upstream directly, and that the bytes are the same.
func TestSDKStreaming(t *testing.T) {
	e := newEnv(t, "")
	params := anthropic.MessageNewParams{Model: anthropic.ModelClaudeHaiku4_5, MaxTokens: 1000, Messages: userMsg("hi")}
	accumulate := func(c anthropic.Client) (anthropic.Message, []string) {
		s := c.Messages.NewStreaming(context.Background(), params)
		var m anthropic.Message
		var types []string
		for s.Next() {
			ev := s.Current()
			types = append(types, ev.Type)
			if err := m.Accumulate(ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return m, types
	}
	viaProxy, types := accumulate(e.client)
	direct, directTypes := accumulate(anthropic.NewClient(option.WithBaseURL(e.up.URL), option.WithAPIKey(realKey), option.WithMaxRetries(0)))
	norm := func(m anthropic.Message) string {
		return regexp.MustCompile(`msg_fake_\d+`).ReplaceAllString(m.RawJSON(), "msg_X")
	}
	if norm(viaProxy) != norm(direct) {
		t.Fatalf("accumulated through sidecar:\n%s\ndirect:\n%s", norm(viaProxy), norm(direct))
	}
	if strings.Join(types, ",") != strings.Join(directTypes, ",") || !strings.Contains(strings.Join(types, ","), "x_future_event") {
		t.Errorf("event types %v, direct %v (unknown types must pass)", types, directTypes)
	}
	if viaProxy.Usage.OutputTokens != 12 || viaProxy.Content[2].Name != "get_weather" || len(viaProxy.Content[1].Citations) != 1 || viaProxy.Content[0].Signature == "" {
		t.Errorf("accumulated = %+v", viaProxy)
	}
	rec := e.audit.records(t)[0]
	// message_delta is cumulative: 11 then 12 must give 12, never 23.
	if rec["outputTokens"] != 12.0 || rec["inputTokens"] == 0.0 || rec["stream"] != true {
		t.Errorf("audit of stream = %v", rec)
	}
}

func TestRawStreamBytesUnchanged(t *testing.T) {
	e := newEnv(t, "")
	body := `{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"x"}]}`
	get := func(base, key string) string {
		req, _ := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", key)
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return regexp.MustCompile(`(msg|req)_fake_\d+`).ReplaceAllString(string(b), "ID")
	}
	if a, b := get(e.srv.URL, "x"), get(e.up.URL, realKey); a != b {
		t.Fatalf("stream through sidecar differs from upstream's:\n%s\n---\n%s", a, b)
	}
}

func TestSDKCountTokensModelsAndBetas(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	n, err := e.client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: anthropic.ModelClaudeHaiku4_5, Messages: userMsg("hi")})
	if err != nil || n.InputTokens < 1 {
		t.Fatalf("count_tokens: %v %+v", err, n)
	}
	// The list is filtered by policy (TestModelsListShowsOnlyUsableModels has the cases).
	page, err := e.client.Models.List(ctx, anthropic.ModelListParams{})
	if err != nil || len(page.Data) != 3 {
		t.Fatalf("models list: %v %+v", err, page)
	}
	m, err := e.client.Models.Get(ctx, "claude-haiku-4-5", anthropic.ModelGetParams{})
	if err != nil || m.ID != "claude-haiku-4-5-20251001" {
		t.Fatalf("models get: %v", err)
	}
	// Beta API: ?beta=true and the anthropic-beta header.
	_, err = e.client.Beta.Messages.New(ctx, anthropic.BetaMessageNewParams{
		Model: anthropic.ModelClaudeHaiku4_5, MaxTokens: 10,
		Messages: []anthropic.BetaMessageParam{anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock("hi"))},
		Betas:    []anthropic.AnthropicBeta{"context-1m-2025-08-07", "interleaved-thinking-2025-05-14"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Repeated anthropic-beta headers must arrive as they were sent.
	_, err = e.client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10, Messages: userMsg("hi")},
		option.WithHeaderAdd("anthropic-beta", "a-2025"), option.WithHeaderAdd("anthropic-beta", "b-2025,c-2025"))
	if err != nil {
		t.Fatal(err)
	}
	// Claude Code calls the beta endpoints with ?beta=true.
	for _, p := range []string{"/v1/messages?beta=true", "/v1/messages/count_tokens?beta=true"} {
		req, _ := http.NewRequest("POST", e.srv.URL+p, strings.NewReader(`{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`))
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, err, resp.Status)
		}
		resp.Body.Close()
	}
	reqs := e.fake.Requests()
	if reqs[5].Query != "beta=true" || reqs[6].Query != "beta=true" || reqs[6].Path != "/v1/messages/count_tokens" {
		t.Errorf("?beta=true not forwarded: %+v %+v", reqs[5].Query, reqs[6].Query)
	}
	beta := reqs[3]
	if beta.Header.Get("Anthropic-Beta") != "context-1m-2025-08-07,interleaved-thinking-2025-05-14" {
		t.Errorf("beta request: query %q, anthropic-beta %q", beta.Query, beta.Header.Values("Anthropic-Beta"))
	}
	if got := reqs[4].Header.Values("Anthropic-Beta"); strings.Join(got, "|") != "a-2025|b-2025,c-2025" {
		t.Errorf("repeated anthropic-beta = %q", got)
	}
	if reqs[0].Path != "/v1/messages/count_tokens" {
		t.Errorf("count_tokens path %q", reqs[0].Path)
	}
}

// TestModelGetChecksModelRules: GET /v1/models/{id} is held to models.allow and models.deny like a
// Messages request, after the alias is resolved, and an alias is forwarded resolved.
func TestModelGetChecksModelRules(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	// The model rules apply to the id in the path, after the alias is resolved (and forwarded resolved).
	// The upstream resolves its own alias to the dated id, as the API does.
	m, err := e.client.Models.Get(ctx, "fast", anthropic.ModelGetParams{})
	if err != nil || m.ID != "claude-haiku-4-5-20251001" {
		t.Fatalf("models get by alias: %v %+v", err, m)
	}
	if reqs := e.fake.Requests(); reqs[len(reqs)-1].Path != "/v1/models/claude-haiku-4-5" {
		t.Errorf("models get by alias forwarded to %q", reqs[len(reqs)-1].Path)
	}
	for id, rule := range map[string]string{"claude-opus-4-1": "rule models.allow", "claude-haiku-3-5": "rule models.deny"} {
		forwarded := len(e.fake.Requests())
		_, err := e.client.Models.Get(ctx, id, anthropic.ModelGetParams{})
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Type() != "permission_error" || !strings.Contains(apiErr.Message, rule) ||
			apiErr.Response.Header.Get(proxy.HeaderError) != "true" {
			t.Fatalf("models get %s: %v, want 403 permission_error naming %s", id, err, rule)
		}
		if len(e.fake.Requests()) != forwarded {
			t.Errorf("models get %s was forwarded", id)
		}
	}
}

// failingLimiter admits every request and then fails to settle or refund it.
type failingLimiter struct{}

var errLimiterDown = errors.New("limiter backend unreachable")

func (failingLimiter) Reserve(context.Context, limits.Request) (*limits.Reservation, error) {
	return &limits.Reservation{}, nil
}
func (failingLimiter) Settle(context.Context, *limits.Reservation, usage.Usage) error {
	return errLimiterDown
}
func (failingLimiter) Refund(context.Context, *limits.Reservation) error { return errLimiterDown }

// TestLimiterReleaseFailuresAreReported: the response is already sent when a reservation is released, so
// a limiter failure then must at least be logged and counted, never dropped.
func TestLimiterReleaseFailuresAreReported(t *testing.T) {
	cases := []struct {
		name   string
		creds  credentials.Source
		status int
		op     string
	}{
		{name: "settle after forwarding", creds: credentials.Static(realKey), status: 200, op: "settle"},
		{name: "refund when never forwarded", creds: credentials.Static(""), status: 503, op: "refund"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "", func(o *proxy.Options) { o.Limiter, o.Credentials = failingLimiter{}, c.creds })
			req, err := http.NewRequest("POST", e.srv.URL+"/v1/messages",
				strings.NewReader(`{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("anthropic-version", "2023-06-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != c.status {
				t.Fatalf("status %d (%v), want %d", resp.StatusCode, err, c.status)
			}
			// The release is deferred to the end of the handler, which may finish after the client has read.
			want := `claude_guard_limiter_errors_total{op="` + c.op + `"} 1`
			scrape := func() string {
				rec := httptest.NewRecorder()
				e.metrics.Handler(func() string { return "" }, "").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				return rec.Body.String()
			}
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(scrape(), want) && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if got := scrape(); !strings.Contains(got, want) {
				t.Fatalf("metrics lack %s:\n%s", want, got)
			}
			logs := e.logs.String()
			if !strings.Contains(logs, "Failed to release a rate limit reservation") || !strings.Contains(logs, `"op":"`+c.op+`"`) ||
				!strings.Contains(logs, errLimiterDown.Error()) {
				t.Errorf("no log line for the failed %s:\n%s", c.op, logs)
			}
		})
	}
}

func TestSDKTypedErrors(t *testing.T) {
	e := newEnv(t, `
endpoints: [/v1/messages, /v1/models]
limits:
  rules:
  - {name: tiny, key: Workload, window: Minute, tokens: 5000, tokenType: Output}
`)
	ctx := context.Background()
	cases := []struct {
		name        string
		model       string
		maxTokens   int64
		opts        []option.RequestOption
		status      int
		typ         string
		proxyError  bool
		shouldRetry string
		retryAfter  bool
		msg         string
	}{
		{name: "model not allowed", model: "claude-opus-4-1", maxTokens: 10, status: 403, typ: "permission_error", proxyError: true, shouldRetry: "false", msg: "rule models.allow"},
		{name: "model denied", model: "claude-haiku-3-5", maxTokens: 10, status: 403, typ: "permission_error", proxyError: true, shouldRetry: "false", msg: "rule models.deny"},
		{name: "max_tokens over ceiling", model: "claude-sonnet-4-5", maxTokens: 9000, status: 400, typ: "invalid_request_error", proxyError: true, shouldRetry: "false", msg: "rule models.maxTokens"},
		{name: "limit can never fit", model: "claude-sonnet-4-5", maxTokens: 6000, status: 429, typ: "rate_limit_error", proxyError: true, shouldRetry: "false", retryAfter: true, msg: `rule limits "policy/tiny"`},
		{name: "upstream 429 passes unchanged", model: "claude-haiku-4-5", maxTokens: 10, opts: []option.RequestOption{option.WithHeader(fakeupstream.ScenarioHeader, fakeupstream.ScenarioRateLimited)},
			status: 429, typ: "rate_limit_error", retryAfter: true},
		{name: "upstream 529 passes unchanged", model: "claude-haiku-4-5", maxTokens: 10, opts: []option.RequestOption{option.WithHeader(fakeupstream.ScenarioHeader, fakeupstream.ScenarioOverloaded)},
			status: 529, typ: "overloaded_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.client.Messages.New(ctx, anthropic.MessageNewParams{Model: c.model, MaxTokens: c.maxTokens, Messages: userMsg("hi")}, c.opts...)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("want *anthropic.Error, got %v", err)
			}
			if apiErr.StatusCode != c.status || string(apiErr.Type()) != c.typ {
				t.Fatalf("status %d type %q, want %d %q (%v)", apiErr.StatusCode, apiErr.Type(), c.status, c.typ, err)
			}
			h := apiErr.Response.Header
			if (h.Get(proxy.HeaderError) == "true") != c.proxyError {
				t.Errorf("%s = %q, want proxy error %v", proxy.HeaderError, h.Get(proxy.HeaderError), c.proxyError)
			}
			if c.shouldRetry != "" && h.Get("x-should-retry") != c.shouldRetry {
				t.Errorf("x-should-retry = %q, want %q", h.Get("x-should-retry"), c.shouldRetry)
			}
			if c.retryAfter && h.Get("retry-after") == "" {
				t.Errorf("missing retry-after")
			}
			if !c.proxyError && !strings.HasPrefix(apiErr.RequestID, "req_fake_") {
				t.Errorf("upstream request-id not passed through: %q", apiErr.RequestID)
			}
			if !strings.Contains(apiErr.Message, c.msg) {
				t.Errorf("message %q does not say %q", apiErr.Message, c.msg)
			}
		})
	}
	// count_tokens is not in this policy's endpoints.
	_, err := e.client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "claude-haiku-4-5", Messages: userMsg("hi")})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || !strings.Contains(apiErr.Message, "rule endpoints") {
		t.Fatalf("count_tokens outside the allow-list: %v", err)
	}
}

func TestUpstream401InvalidatesKey(t *testing.T) {
	e := newEnv(t, "")
	e.fake.SetKeys("sk-rotated")
	_, err := e.client.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10, Messages: userMsg("hi")})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Type() != "authentication_error" {
		t.Fatalf("want the upstream's 401, got %v", err)
	}
	if e.creds.invalidated.Load() != 1 {
		t.Errorf("credentials invalidated %d times, want 1", e.creds.invalidated.Load())
	}
}

func TestMidStreamErrorAndClientCancel(t *testing.T) {
	e := newEnv(t, "")
	s := e.client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 100, Messages: userMsg("hi")},
		option.WithHeader(fakeupstream.ScenarioHeader, fakeupstream.ScenarioMidStreamError))
	for s.Next() {
	}
	if s.Err() == nil || !strings.Contains(s.Err().Error(), "overloaded") {
		t.Fatalf("stream error = %v, want the in-stream overloaded error", s.Err())
	}

	ctx, cancel := context.WithCancel(context.Background())
	slow := e.client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 100, Messages: userMsg("hi")},
		option.WithHeader(fakeupstream.ScenarioHeader, fakeupstream.ScenarioSlow), option.WithHeader(fakeupstream.DelayHeader, "50ms"))
	if !slow.Next() {
		t.Fatalf("no first event: %v", slow.Err())
	}
	cancel()
	for slow.Next() {
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.fake.Cancelled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.fake.Cancelled.Load() != 1 {
		t.Fatalf("client cancellation did not reach the upstream")
	}
	// Wait for the audit record of the aborted stream.
	for len(e.audit.records(t)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	recs := e.audit.records(t)
	if recs[0]["streamError"] != "overloaded_error" {
		t.Errorf("mid-stream error not audited: %v", recs[0])
	}
	if recs[1]["clientAborted"] != true || recs[1]["inputTokens"] == 0.0 {
		t.Errorf("aborted stream audit = %v (want clientAborted and the observed input tokens)", recs[1])
	}
}

func TestPolicyRewritesAndShadow(t *testing.T) {
	t.Run("alias and clamp", func(t *testing.T) {
		e := newEnv(t, "")
		msg, err := e.client.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "fast", MaxTokens: 20000, Messages: userMsg("hi")})
		if err != nil {
			t.Fatal(err)
		}
		var sent struct {
			Model     string `json:"model"`
			MaxTokens int    `json:"max_tokens"`
		}
		if err := json.Unmarshal(e.fake.Requests()[0].Body, &sent); err != nil {
			t.Fatal(err)
		}
		if sent.Model != "claude-haiku-4-5" || sent.MaxTokens != 4096 || msg.Model != "claude-haiku-4-5" {
			t.Fatalf("upstream got model %q max_tokens %d", sent.Model, sent.MaxTokens)
		}
		rec := e.audit.records(t)[0]
		if rec["requestedModel"] != "fast" || rec["clampedFrom"] != 20000.0 {
			t.Errorf("audit = %v", rec)
		}
	})
	t.Run("shadow mode forwards and records", func(t *testing.T) {
		e := newEnv(t, "shadowMode: true\nlimits: {rules: [{name: rpm, key: Workload, window: Minute, requests: 1}]}\n")
		for i := 0; i < 2; i++ {
			if _, err := e.client.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "claude-opus-4-1", MaxTokens: 10, Messages: userMsg("hi")}); err != nil {
				t.Fatalf("shadow mode blocked: %v", err)
			}
		}
		recs := e.audit.records(t)
		if recs[0]["decision"] != "shadow_deny" || recs[0]["rule"] != "models.allow" || recs[1]["decision"] != "shadow_deny" {
			t.Errorf("shadow audit = %v", recs)
		}
	})
	t.Run("deny config refuses everything", func(t *testing.T) {
		e := newEnv(t, "deny: {reason: no ClaudeTenant selects namespace team-a}\n")
		_, err := e.client.Models.List(context.Background(), anthropic.ModelListParams{})
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || !strings.Contains(apiErr.Message, "no ClaudeTenant selects namespace team-a") {
			t.Fatalf("deny config: %v", err)
		}
		if len(e.fake.Requests()) != 0 {
			t.Errorf("deny config forwarded a request")
		}
	})
	t.Run("too large and invalid bodies", func(t *testing.T) {
		e := newEnv(t, "maxRequestBytes: 200\n")
		for _, c := range []struct {
			body   string
			status int
			typ    string
		}{
			{`{"model":"claude-haiku-4-5","max_tokens":5,"messages":"` + strings.Repeat("a", 300) + `"}`, 413, "request_too_large"},
			{`{"model":"claude-haiku-4-5","model":"claude-opus-4-1","max_tokens":5}`, 400, "invalid_request_error"},
			{`{"model":"claude-haiku-4-5","max_tokens":5e3}`, 400, "invalid_request_error"},
		} {
			resp, err := http.Post(e.srv.URL+"/v1/messages", "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Type  string `json:"type"`
				Error struct{ Type, Message string }
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%.40s: decode the error body: %v", c.body, err)
			}
			if resp.StatusCode != c.status || body.Type != "error" || body.Error.Type != c.typ || resp.Header.Get("x-should-retry") != "false" {
				t.Errorf("%.40s: %d %+v", c.body, resp.StatusCode, body)
			}
		}
	})
}

// TestLimitsHoldUnderParallelClients fires many parallel SDK calls at a requests-per-minute and a
// tokens-per-minute limit: exactly the capacity is admitted and the rest get 429.
func TestLimitsHoldUnderParallelClients(t *testing.T) {
	e := newEnv(t, `
limits:
  rules:
  - {name: rpm, key: Workload, window: Day, requests: 40}
  - {name: out, key: Workload, window: Day, tokens: 1000000, tokenType: Output}
`)
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.client.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 100, Messages: userMsg("hi")})
			var apiErr *anthropic.Error
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &apiErr) && apiErr.StatusCode == 429:
				limited.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 40 || limited.Load() != 60 {
		t.Fatalf("admitted %d, limited %d; want 40 and 60", ok.Load(), limited.Load())
	}
	if got := len(e.fake.Requests()); got != 40 {
		t.Fatalf("upstream saw %d requests, want 40", got)
	}
}

// TestTokenLimitSettlesRealUsage shows reservations being refunded: max_tokens 600 reserves far more
// than the 12 output tokens the fake really uses, yet calls keep fitting because each settles.
func TestTokenLimitSettlesRealUsage(t *testing.T) {
	e := newEnv(t, "limits: {rules: [{name: out, key: Namespace, window: Day, tokens: 1000, tokenType: Output}]}\n")
	for i := 0; i < 20; i++ {
		if _, err := e.client.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 600, Messages: userMsg("hi")}); err != nil {
			t.Fatalf("call %d: %v (settle did not refund the reservation)", i, err)
		}
	}
}
