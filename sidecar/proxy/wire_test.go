package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// wireCase is one request on the wire and what the client and the upstream must see of it.
type wireCase struct {
	name   string
	method string
	path   string // with the query
	body   string
	header http.Header

	status      int
	rule        string // x-claude-guard-rule of a refusal, "" when forwarded
	allow       string // the Allow header of a 405
	forwarded   bool   // the fake recorded the request
	check       func(t *testing.T, got fakeupstream.Recorded)
	checkAudits func(t *testing.T, recs []map[string]any)
}

// claudeCodeBody is the first request Claude Code 2.1 sends for `claude -p "say hi" --model
// claude-haiku-4-5`: max_tokens 32000 with a thinking budget of 31999, streamed.
const claudeCodeBody = `{"model":"claude-haiku-4-5","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999},"stream":true,` +
	`"metadata":{"user_id":"user_abc_account__session_5f0c"},"system":[{"type":"text","text":"You are Claude Code."}],` +
	`"messages":[{"role":"user","content":[{"type":"text","text":"say hi"}]}]}`

func claudeCodeHeaders() http.Header {
	h := http.Header{}
	h.Set("Anthropic-Version", "2023-06-01")
	h.Add("Anthropic-Beta", "claude-code-20250219,interleaved-thinking-2025-05-14")
	h.Add("Anthropic-Beta", "fine-grained-tool-streaming-2025-05-14")
	h.Set("X-App", "cli")
	h.Set("X-Claude-Code-Session-Id", "5f0c6d1e-session")
	h.Set("User-Agent", "claude-cli/2.1.332 (external, cli)")
	h.Set("X-Api-Key", wellknown.PlaceholderAPIKey)
	h.Set("Content-Type", "application/json")
	return h
}

func wireHeaders(kv ...string) http.Header {
	h := http.Header{"Anthropic-Version": {"2023-06-01"}, "Content-Type": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = append(h[kv[i]], kv[i+1]) // as written: no canonicalisation
	}
	return h
}

const hiBody = `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`

// TestWire: the method, framing and header cases a proxy must decide rather than forward by accident,
// and the request Claude Code sends, asserted from what reached the fake upstream (which refuses what
// the real API refuses).
func TestWire(t *testing.T) {
	cases := []wireCase{
		{name: "Claude Code's first request is clamped into one the API accepts", method: "POST", path: "/v1/messages?beta=true",
			body: claudeCodeBody, header: claudeCodeHeaders(), status: 200, forwarded: true,
			check: func(t *testing.T, got fakeupstream.Recorded) {
				if got.Query != "beta=true" {
					t.Errorf("query = %q, want beta=true", got.Query)
				}
				for _, h := range []string{"Anthropic-Beta", "X-App", "X-Claude-Code-Session-Id", "User-Agent", "Anthropic-Version"} {
					if want := claudeCodeHeaders().Values(h); strings.Join(got.Header.Values(h), "|") != strings.Join(want, "|") {
						t.Errorf("%s reached the upstream as %q, want %q", h, got.Header.Values(h), want)
					}
				}
				var b struct {
					MaxTokens int64 `json:"max_tokens"`
					Thinking  struct {
						Budget int64 `json:"budget_tokens"`
					} `json:"thinking"`
				}
				if err := json.Unmarshal(got.Body, &b); err != nil || b.MaxTokens != 4096 || b.Thinking.Budget != 4095 {
					t.Errorf("upstream body max_tokens %d budget %d (%v), want 4096 and 4095", b.MaxTokens, b.Thinking.Budget, err)
				}
			},
			checkAudits: func(t *testing.T, recs []map[string]any) {
				r := recs[len(recs)-1]
				for k, want := range map[string]float64{"clampedFrom": 32000, "maxTokens": 4096, "thinkingBudgetFrom": 31999, "thinkingBudget": 4095} {
					if r[k] != want {
						t.Errorf("audit %s = %v, want %v", k, r[k], want)
					}
				}
			}},
		{name: "GET on messages is 405", method: "GET", path: "/v1/messages", header: wireHeaders(), status: 405, rule: "method", allow: "POST"},
		{name: "PUT on messages is 405", method: "PUT", path: "/v1/messages", body: hiBody, header: wireHeaders(), status: 405, rule: "method", allow: "POST"},
		{name: "DELETE on a model is 405", method: "DELETE", path: "/v1/models/claude-haiku-4-5", header: wireHeaders(), status: 405, rule: "method", allow: "GET"},
		{name: "OPTIONS on models is 405", method: "OPTIONS", path: "/v1/models", header: wireHeaders(), status: 405, rule: "method", allow: "GET"},
		{name: "an empty POST body is 400", method: "POST", path: "/v1/messages", header: wireHeaders(), status: 400, rule: "body"},
		{name: "an empty count_tokens body is 400", method: "POST", path: "/v1/messages/count_tokens", header: wireHeaders(), status: 400, rule: "body"},
		{name: "method-override headers are stripped", method: "POST", path: "/v1/messages", body: hiBody, status: 200, forwarded: true,
			header: wireHeaders("X-Http-Method-Override", "DELETE", "X_HTTP_Method", "PUT", "x-method-override", "GET"),
			check: func(t *testing.T, got fakeupstream.Recorded) {
				for name := range got.Header {
					if n := strings.ToLower(strings.ReplaceAll(name, "_", "-")); strings.Contains(n, "method") {
						t.Errorf("%s reached the upstream", name)
					}
				}
			}},
		{name: "credential headers in every spelling are stripped", method: "POST", path: "/v1/messages", body: hiBody, status: 200, forwarded: true,
			header: wireHeaders("X_Api_Key", "sk-ant-app-own-key", "Authorization_", "Bearer app-token", "x-api-key_", "sk-ant-second",
				"Proxy_Authorization", "Basic dTpw", "cookie_", "session=1", "Anthropic_Api_Key", "sk-ant-third", "Authorization", "Bearer sk-ant-fourth"),
			check: func(t *testing.T, got fakeupstream.Recorded) {
				for name, vs := range got.Header {
					n := strings.Trim(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "-")
					switch {
					case n == "x-api-key" && name == "X-Api-Key" && len(vs) == 1 && vs[0] == realKey:
					case n == "x-api-key" || n == "authorization" || n == "proxy-authorization" || n == "cookie" || n == "anthropic-api-key":
						t.Errorf("credential header %s reached the upstream", name)
					}
				}
			}},
		{name: "a protocol upgrade is refused", method: "GET", path: "/v1/models", header: wireHeaders("Connection", "Upgrade", "Upgrade", "websocket"),
			status: 400, rule: "protocol"},
		{name: "h2c upgrade is refused", method: "POST", path: "/v1/messages", body: hiBody, header: wireHeaders("Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "Http2-Settings", "AAMAAABkAAQAAP__"),
			status: 400, rule: "protocol"},
	}
	e := newEnv(t, "")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			req, err := http.NewRequest(c.method, e.srv.URL+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = c.header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if got := resp.Header.Get(proxy.HeaderRule); got != c.rule {
				t.Errorf("rule %q, want %q", got, c.rule)
			}
			if c.rule != "" {
				assertRefusal(t, resp, body)
			}
			if got := resp.Header.Get("Allow"); got != c.allow {
				t.Errorf("Allow %q, want %q", got, c.allow)
			}
			recs := e.fake.Requests()[before:]
			if c.forwarded != (len(recs) == 1) {
				t.Fatalf("%d requests reached the upstream, want forwarded=%v", len(recs), c.forwarded)
			}
			if c.check != nil {
				c.check(t, recs[0])
			}
			if c.checkAudits != nil {
				c.checkAudits(t, e.audit.records(t))
			}
		})
	}
}

// assertRefusal checks a refusal by claude-guard: Anthropic's error shape, and x-should-retry false,
// since sending the same request again cannot help.
func assertRefusal(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type, Message string
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Type != "error" || e.Error.Type == "" || !strings.HasPrefix(e.Error.Message, "claude-guard: ") {
		t.Errorf("refusal is not in Anthropic's shape: %s", body)
	}
	if got := resp.Header.Get(proxy.HeaderShouldRetry); got != "false" {
		t.Errorf("x-should-retry %q on a refusal, want false", got)
	}
}

// TestContentLengthWithTransferEncoding: a request with both headers (the shape of request
// smuggling) is read by Transfer-Encoding alone, answered, and its connection closed (RFC 9112 §6.1);
// the upstream gets the body with its own Content-Length.
func TestContentLengthWithTransferEncoding(t *testing.T) {
	e := newEnv(t, "")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	smuggled := "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
	chunk := hiBody
	raw := fmt.Sprintf("POST /v1/messages HTTP/1.1\r\nHost: x\r\nAnthropic-Version: 2023-06-01\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n%s", len(chunk), len(chunk), chunk, smuggled)
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("status %d, Connection: close %v; want 200 and close", resp.StatusCode, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the connection stayed open after the response (read: %v): the request after the body would be served", err)
	}
	recs := e.fake.Requests()
	if len(recs) != 1 || string(recs[0].Body) != hiBody || recs[0].Path != "/v1/messages" {
		t.Fatalf("upstream saw %d requests, want exactly the one chunked POST", len(recs))
	}
}

// TestConnectivityProbeIsLocal: Claude Code's HEAD /api/hello is answered by the sidecar, never
// reaches the upstream, is not audited and costs nothing against the limits.
func TestConnectivityProbeIsLocal(t *testing.T) {
	e := newEnv(t, `
limits:
  rules:
  - {name: rpm, key: Workload, window: Minute, requests: 1}
`)
	for range 3 {
		req, _ := http.NewRequest(http.MethodHead, e.srv.URL+proxy.ProbePath, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("probe status %d, want 200", resp.StatusCode)
		}
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Fatalf("%d probes reached the upstream", n)
	}
	if resp, body := post(t, e, hiBody, nil); resp.StatusCode != 200 {
		t.Fatalf("first real request after the probes: %d %s (the probes were charged)", resp.StatusCode, body)
	}
	if recs := e.audit.records(t); len(recs) != 1 {
		t.Fatalf("%d audit records, want only the real request's", len(recs))
	}
}

// TestRefusalsAreNotCharged: requests claude-guard refuses, and requests the upstream never answered,
// do not count against request limits, so a client retrying a refused request cannot lock itself
// (or its namespace) out.
func TestRefusalsAreNotCharged(t *testing.T) {
	e := newEnv(t, `
limits:
  rules:
  - {name: rpm, key: Workload, window: Minute, requests: 2}
`)
	for _, body := range []string{
		`{"model":"claude-opus-4-1","max_tokens":10,"messages":[]}`,      // models.allow
		`{"model":"claude-sonnet-4-5","max_tokens":90000,"messages":[]}`, // models.maxTokens Reject
		`{"model":`, // body
	} {
		for range 3 {
			if resp, _ := post(t, e, body, nil); resp.StatusCode < 400 || resp.StatusCode == 429 {
				t.Fatalf("refused request answered %d", resp.StatusCode)
			}
		}
	}
	for i := range 2 {
		if resp, body := post(t, e, hiBody, nil); resp.StatusCode != 200 {
			t.Fatalf("allowed request %d after nine refusals: %d %s", i+1, resp.StatusCode, body)
		}
	}
	if resp, _ := post(t, e, hiBody, nil); resp.StatusCode != 429 {
		t.Fatalf("third allowed request: %d, want 429 (the limit still works)", resp.StatusCode)
	}

	// An upstream that does not answer: the 502s are refunded.
	down := httptest.NewServer(http.NotFoundHandler())
	downURL, _ := url.Parse(down.URL)
	down.Close()
	e2 := newEnv(t, `
limits:
  rules:
  - {name: rpm, key: Workload, window: Minute, requests: 1}
`, func(o *proxy.Options) { o.Upstream = downURL })
	for i := range 3 {
		resp, body := post(t, e2, hiBody, nil)
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("request %d to an unreachable upstream: %d %s, want 502 (not 429: unanswered requests are refunded)", i+1, resp.StatusCode, body)
		}
	}
}
