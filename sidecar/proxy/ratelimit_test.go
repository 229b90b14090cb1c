package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// reply is a response with its body read.
type reply struct {
	StatusCode int
	Header     http.Header
}

// post sends a raw Messages request through the sidecar and returns the response and its body.
func post(t *testing.T, e *env, body string, header map[string]string) (reply, string) {
	t.Helper()
	return postFrom(t, e, strings.NewReader(body), header)
}

// postFrom is post with the body read from r: a reader net/http cannot size is sent chunked.
func postFrom(t *testing.T, e *env, r io.Reader, header map[string]string) (reply, string) {
	t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+"/v1/messages", r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header}, string(b)
}

// TestRateLimitHeaders: every response a limit applies to carries the most constraining quotas in our own
// header prefix: JSON and streamed responses, upstream errors and our own 429s; remaining counts go down;
// reset is the window's end in RFC 3339. The upstream's anthropic-ratelimit-* headers pass through
// unchanged and the proxy never invents any.
func TestRateLimitHeaders(t *testing.T) {
	e := newEnv(t, `
limits:
  rules:
  - {name: rpd, key: Workload, window: Day, requests: 4}
  - {name: tpd, key: Workload, window: Day, tokens: 10000, tokenType: Total}
  - {name: tph, key: Workload, window: Hour, tokens: 1000000, tokenType: Total}
`)
	const msg = `{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]%s}`
	steps := []struct {
		name     string
		body     string
		header   map[string]string
		status   int
		remain   int64
		upstream bool // the upstream's own anthropic-ratelimit header is expected
	}{
		{name: "JSON", body: strings.Replace(msg, "%s", "", 1), status: 200, remain: 3},
		{name: "stream", body: strings.Replace(msg, "%s", `,"stream":true`, 1), status: 200, remain: 2},
		{name: "upstream 429 passes through", body: strings.Replace(msg, "%s", "", 1), header: map[string]string{fakeupstream.ScenarioHeader: fakeupstream.ScenarioRateLimited}, status: 429, remain: 1, upstream: true},
		{name: "last one", body: strings.Replace(msg, "%s", "", 1), status: 200, remain: 0},
		{name: "our 429", body: strings.Replace(msg, "%s", "", 1), status: 429, remain: 0},
	}
	prevTokens, prevOK := int64(1<<62), false
	for _, s := range steps {
		before := time.Now().UTC()
		resp, body := post(t, e, s.body, s.header)
		if resp.StatusCode != s.status {
			t.Fatalf("%s: status %d, want %d: %s", s.name, resp.StatusCode, s.status, body)
		}
		h := resp.Header
		if got := h.Get(proxy.HeaderRequestsLimit); got != "4" {
			t.Fatalf("%s: requests-limit %q, want 4 (headers %v)", s.name, got, h)
		}
		if got := h.Get(proxy.HeaderRequestsRemaining); got != strconv.FormatInt(s.remain, 10) {
			t.Fatalf("%s: requests-remaining %q, want %d", s.name, got, s.remain)
		}
		dayEnd := time.Date(before.Year(), before.Month(), before.Day()+1, 0, 0, 0, 0, time.UTC)
		for _, name := range []string{proxy.HeaderRequestsReset, proxy.HeaderTokensReset} {
			if got := h.Get(name); got != dayEnd.Format(time.RFC3339) {
				t.Fatalf("%s: %s = %q, want the day's end %s", s.name, name, got, dayEnd.Format(time.RFC3339))
			}
		}
		// tpd (10000 per day) constrains more than tph (1000000 per hour).
		tokens, err := strconv.ParseInt(h.Get(proxy.HeaderTokensRemaining), 10, 64)
		if err != nil || h.Get(proxy.HeaderTokensLimit) != "10000" {
			t.Fatalf("%s: tokens headers %q/%q", s.name, h.Get(proxy.HeaderTokensLimit), h.Get(proxy.HeaderTokensRemaining))
		}
		// After a 200 the previous request's real usage is settled, so the next one sees less remaining.
		// (An upstream error settles at zero tokens; a refused request shows what is left before it.)
		if prevOK && s.status == 200 && tokens >= prevTokens {
			t.Fatalf("%s: tokens-remaining %d did not decrease from %d", s.name, tokens, prevTokens)
		}
		prevTokens, prevOK = tokens, s.status == 200
		if got := h.Get("anthropic-ratelimit-requests-remaining"); (got != "") != s.upstream {
			t.Fatalf("%s: anthropic-ratelimit-requests-remaining = %q; the proxy must pass the upstream's through and never add its own", s.name, got)
		}
		if len(h.Values(proxy.HeaderRequestsRemaining)) != 1 {
			t.Fatalf("%s: %d values of %s", s.name, len(h.Values(proxy.HeaderRequestsRemaining)), proxy.HeaderRequestsRemaining)
		}
		if s.name == "our 429" {
			var e struct {
				Error struct{ Type, Message string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Type != "rate_limit_error" || !strings.Contains(e.Error.Message, "policy/rpd") {
				t.Fatalf("our 429 body: %s", body)
			}
		}
	}
}

// TestNoRateLimitHeadersWithoutRules: without limits there is nothing to report.
func TestNoRateLimitHeadersWithoutRules(t *testing.T) {
	e := newEnv(t, "")
	resp, _ := post(t, e, `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, nil)
	for name := range resp.Header {
		if strings.HasPrefix(strings.ToLower(name), proxy.HeaderRateLimitPrefix) {
			t.Fatalf("header %s set with no limits", name)
		}
	}
}

// unavailableLimiter is a shared backend that cannot be reached.
type unavailableLimiter struct{ failingLimiter }

func (unavailableLimiter) Reserve(context.Context, limits.Request) (*limits.Reservation, error) {
	return nil, limits.ErrUnavailable
}

// TestLimiterUnavailableFailsClosed: a backend error under FailClosed is a retryable 503 that says the
// rate limiter is unavailable and nothing else; the backend logs its outage itself, so the proxy does
// not log every request.
func TestLimiterUnavailableFailsClosed(t *testing.T) {
	e := newEnv(t, "limits: {failureMode: FailClosed, rules: [{name: r, key: Workload, window: Minute, requests: 5}]}\n",
		func(o *proxy.Options) { o.Limiter = unavailableLimiter{} })
	resp, body := post(t, e, `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != 503 || resp.Header.Get("x-should-retry") != "true" || resp.Header.Get("retry-after") != "1" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, "the rate limiter is unavailable") || !strings.Contains(body, "FailClosed") {
		t.Fatalf("body %s", body)
	}
	if strings.Contains(e.logs.String(), "refusing the request") {
		t.Fatalf("logged per request:\n%s", e.logs.String())
	}
	if len(e.fake.Requests()) != 0 {
		t.Fatal("the request went upstream")
	}
}

// TestRequestCountIsReservedBeforeALargeBody: a large request's count is reserved before its body is
// read, so a client over its request limit is answered 429 while its body is still unsent: the sidecar
// neither waits for nor buffers it. A refused request holds nothing, and a small request keeps the one
// reservation after its body.
func TestRequestCountIsReservedBeforeALargeBody(t *testing.T) {
	e := newEnv(t, "limits: {rules: [{name: rpm, key: Workload, window: Day, requests: 2}]}\n")
	big := `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`
	for i, body := range []string{big, `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`} {
		if resp, b := post(t, e, body, nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if got := len(e.fake.Requests()); got != 2 {
		t.Fatalf("the upstream saw %d requests, want 2", got)
	}
	// The third announces 2 MiB and sends none of it.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST /v1/messages HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 2<<20); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body is unsent: %v (the sidecar waits for the body before counting the request)", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || !strings.Contains(string(b), "policy/rpm") {
		t.Fatalf("status %d %s, want 429 naming policy/rpm", resp.StatusCode, b)
	}
	if got := len(e.fake.Requests()); got != 2 {
		t.Fatalf("the upstream saw %d requests, want 2", got)
	}
}
