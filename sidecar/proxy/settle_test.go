package proxy_test

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// TestIncompleteResponsesAreChargedWhatTheyCost: a response whose final usage never arrives is not
// settled at message_start's one output token (which the API does not bill by): a stream cut after
// content was streamed is charged an estimate from what was streamed, a request the client left before
// any response is charged its max_tokens, and the audit record says which.
func TestIncompleteResponsesAreChargedWhatTheyCost(t *testing.T) {
	e := newEnv(t, `
limits:
  rules:
  - {name: out-per-day, key: Workload, window: Day, tokens: 1000000, tokenType: Output}
`)
	params := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 4000, Messages: userMsg("hi")}
	waitRecords := func(n int) []map[string]any { return e.audit.waitRecords(t, n) }

	// 1. Complete stream: reported usage, no usageSource.
	s := e.client.Messages.NewStreaming(context.Background(), params)
	for s.Next() {
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	// 2. An upstream error event mid-stream: no message_stop, content was streamed.
	s = e.client.Messages.NewStreaming(context.Background(), params, option.WithHeader(fakeupstream.ScenarioHeader, fakeupstream.ScenarioMidStreamError))
	for s.Next() {
	}
	// 3. The client leaves mid-stream, after a few events.
	ctx, cancel := context.WithCancel(context.Background())
	slow := e.client.Messages.NewStreaming(ctx, params, option.WithHeader(fakeupstream.ScenarioHeader, fakeupstream.ScenarioSlow),
		option.WithHeader(fakeupstream.DelayHeader, "30ms"), option.WithHeader(fakeupstream.EventsHeader, "40"))
	for i := 0; i < 12 && slow.Next(); i++ {
	}
	cancel()
	for slow.Next() {
	}
	// 4. The client leaves before any response (a slow non-streaming call).
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, _ = e.client.Messages.New(ctx2, params, option.WithHeader(fakeupstream.AnswerDelayHeader, "2s"))

	recs := waitRecords(4)
	if len(recs) < 4 {
		t.Fatalf("%d audit records, want 4", len(recs))
	}
	cases := []struct {
		name   string
		source string
		out    func(o float64) bool
	}{
		{"complete", "", func(o float64) bool { return o == 12 }},
		{"error event mid-stream", proxy.UsageEstimated, func(o float64) bool { return o > 1 && o < 4000 }},
		{"client left mid-stream", proxy.UsageEstimated, func(o float64) bool { return o > 1 && o < 4000 }},
		{"client left before a response", proxy.UsageReserved, func(o float64) bool { return o == 4000 }},
	}
	var sum float64
	for i, c := range cases {
		r := recs[i]
		src, _ := r["usageSource"].(string)
		out, _ := r["outputTokens"].(float64)
		if src != c.source || !c.out(out) {
			t.Errorf("%s: usageSource %q outputTokens %v", c.name, src, out)
		}
		sum += out
	}
	// What was charged is what was audited: the output counter holds exactly the audited output.
	resp, _ := post(t, e, `{"model":"claude-haiku-4-5","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`, nil)
	if got, want := resp.Header.Get("x-claude-guard-ratelimit-tokens-remaining"), fmt.Sprint(1_000_000-int64(sum)-1); got != want {
		t.Errorf("tokens remaining %s, want %s (the limit less the audited output and this request's hold)", got, want)
	}
}

// TestIncompleteStreamBehindAnUpstreamBasePath: an upstream reached under a base path
// (https://egress.example/anthropic) is metered the same: what makes a response billable is the
// client's path, not the upstream's.
func TestIncompleteStreamBehindAnUpstreamBasePath(t *testing.T) {
	fake := fakeupstream.New(realKey)
	up := httptest.NewServer(http.StripPrefix("/anthropic", fake))
	t.Cleanup(up.Close)
	base, _ := url.Parse(up.URL + "/anthropic")
	e := newEnv(t, "", func(o *proxy.Options) { o.Upstream = base })
	s := e.client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 4000, Messages: userMsg("hi")},
		option.WithHeader(fakeupstream.ScenarioHeader, fakeupstream.ScenarioMidStreamError))
	for s.Next() {
	}
	// The record is written once the handler returns, which can be after the client saw the cut.
	recs := e.audit.waitRecords(t, 1)
	if len(recs) != 1 || recs[0]["status"] != float64(200) || recs[0]["usageSource"] != proxy.UsageEstimated {
		t.Fatalf("audit %v, want the cut stream charged an estimate", recs)
	}
}

// TestSpendMetric: a settled request's cost at the config's prices is added to
// claude_guard_spend_usd_total by namespace and model; a refused model adds nothing.
func TestSpendMetric(t *testing.T) {
	e := newEnv(t, `
prices: [{model: "claude-haiku-*", inputUSD: "1", outputUSD: "5", cacheReadUSD: "0.1", cacheWrite5mUSD: "1.25"}]
budgets: [{name: daily, key: Namespace, window: Day, usd: "10"}]
`)
	body := `{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`
	if r, _ := post(t, e, body, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	if r, _ := post(t, e, `{"model":"claude-opus-4-1","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("a denied model: status %d", r.StatusCode)
	}
	in, out, cw, cr := fakeupstream.Usage([]byte(body), 100)
	// Whole micro-dollars: the limiter truncates each response's cost once.
	want := float64((in*1_000_000+out*5_000_000+cw*1_250_000+cr*100_000)/1_000_000) / 1e6
	e.audit.waitRecords(t, 2)
	if got := testutil.ToFloat64(e.metrics.Spend.WithLabelValues("team-a", "", "claude-haiku-4-5")); math.Abs(got-want) > 1e-9 {
		t.Fatalf("claude_guard_spend_usd_total{namespace=team-a,tenant=,model=claude-haiku-4-5} = %g, want %g", got, want)
	}
	if n := testutil.CollectAndCount(e.metrics.Spend); n != 1 {
		t.Fatalf("%d spend series, want 1 (nothing for the refused model)", n)
	}
}
