package decide

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// policy builds a compiled policy from a base config, applying opts.
func policy(t testing.TB, opts ...func(*policyconfig.Config)) *Policy {
	t.Helper()
	c := &policyconfig.Config{
		APIVersion:  policyconfig.APIVersion,
		Kind:        policyconfig.Kind,
		Credentials: policyconfig.Credentials{Env: &policyconfig.EnvSource{Name: "K"}},
		Models: policyconfig.Models{
			Allow:   []string{"claude-haiku-*", "claude-sonnet-4-5"},
			Deny:    []string{"claude-haiku-3*"},
			Aliases: map[string]string{"fast": "claude-haiku-4-5"},
			MaxTokens: []policyconfig.MaxTokensRule{
				{Model: "claude-sonnet-*", Limit: 8192, Action: policyconfig.ActionReject},
				{Model: "claude-haiku-*", Limit: 4096, Action: policyconfig.ActionClamp},
			},
		},
	}
	for _, o := range opts {
		o(c)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return Compile(c, "test")
}

func msg(model string, maxTokens int, extra string) []byte {
	return []byte(fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"hello"}]%s}`, model, maxTokens, extra))
}

func TestDecide(t *testing.T) {
	shadow := func(c *policyconfig.Config) { c.ShadowMode = true }
	cases := []struct {
		name     string
		opts     []func(*policyconfig.Config)
		method   string
		path     string
		body     []byte
		rule     string // "" = allowed
		status   int
		enforced bool
		wantBody string // substring of the forwarded body
		model    string
		wantPath string // the path to forward, when rewritten
	}{
		{name: "allowed by glob", path: "/v1/messages", body: msg("claude-haiku-4-5", 100, ""), model: "claude-haiku-4-5"},
		{name: "allowed by name", path: "/v1/messages", body: msg("claude-sonnet-4-5", 8192, ""), model: "claude-sonnet-4-5"},
		{name: "count_tokens checks model", path: "/v1/messages/count_tokens", body: []byte(`{"model":"claude-opus-4-1","messages":[]}`), rule: RuleModelAllow, status: 403, enforced: true},
		{name: "count_tokens allowed", path: "/v1/messages/count_tokens", body: []byte(`{"model":"claude-haiku-4-5","messages":[]}`), model: "claude-haiku-4-5"},
		{name: "not allowed", path: "/v1/messages", body: msg("claude-opus-4-1", 100, ""), rule: RuleModelAllow, status: 403, enforced: true},
		{name: "deny beats allow", path: "/v1/messages", body: msg("claude-haiku-3-5", 100, ""), rule: RuleModelDeny, status: 403, enforced: true},
		{name: "alias rewritten then checked", path: "/v1/messages", body: msg("fast", 100, ""), model: "claude-haiku-4-5", wantBody: `"model":"claude-haiku-4-5"`},
		{name: "max_tokens reject", path: "/v1/messages", body: msg("claude-sonnet-4-5", 8193, ""), rule: RuleMaxTokens, status: 400, enforced: true},
		{name: "max_tokens clamp", path: "/v1/messages", body: msg("claude-haiku-4-5", 64000, ""), model: "claude-haiku-4-5", wantBody: `"max_tokens":4096 ,`},
		{name: "clamp after alias", path: "/v1/messages", body: msg("fast", 64000, ""), model: "claude-haiku-4-5", wantBody: `"model":"claude-haiku-4-5","max_tokens":4096 ,`},
		{name: "missing model", path: "/v1/messages", body: []byte(`{"max_tokens":5}`), rule: RuleModelRequired, status: 400, enforced: true},
		{name: "invalid json", path: "/v1/messages", body: []byte(`{"model":"claude-haiku-4-5",}`), rule: RuleBody, status: 400, enforced: true},
		{name: "duplicate key", path: "/v1/messages", body: []byte(`{"model":"claude-haiku-4-5","model":"claude-opus-4-1"}`), rule: RuleBody, status: 400, enforced: true},
		{name: "endpoint not allowed", path: "/v1/files", method: "GET", rule: RuleEndpoints, status: 403, enforced: true},
		{name: "endpoint traversal", path: "/v1/models/../files", method: "GET", rule: RuleEndpoints, status: 403, enforced: true},
		{name: "endpoint encoded", path: "/v1/models/%2e%2e/files", method: "GET", rule: RuleEndpoints, status: 403, enforced: true},
		{name: "models list", path: "/v1/models", method: "GET"},
		{name: "other endpoint with JSON model is checked", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.Endpoints = []string{"/v1/messages/batches"} }},
			path: "/v1/messages/batches", body: []byte(`{"model":"claude-opus-4-1"}`), rule: RuleModelAllow, status: 403, enforced: true},
		{name: "other endpoint with non-JSON body", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.Endpoints = []string{"/v1/files"} }},
			path: "/v1/files", body: []byte("--boundary\r\nContent-Disposition: form-data\r\n"), model: ""},
		{name: "model get", path: "/v1/models/claude-haiku-4-5", method: "GET", model: "claude-haiku-4-5"},
		{name: "model get not allowed", path: "/v1/models/claude-opus-4-1", method: "GET", rule: RuleModelAllow, status: 403, enforced: true},
		{name: "model get deny beats allow", path: "/v1/models/claude-haiku-3-5", method: "GET", rule: RuleModelDeny, status: 403, enforced: true},
		{name: "model get alias rewritten then checked", path: "/v1/models/fast", method: "GET", model: "claude-haiku-4-5", wantPath: "/v1/models/claude-haiku-4-5"},
		{name: "model get alias to a model not allowed", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.Models.Aliases = map[string]string{"big": "claude-opus-4-1"} }},
			path: "/v1/models/big", method: "GET", rule: RuleModelAllow, status: 403, enforced: true, wantPath: "/v1/models/claude-opus-4-1"},
		{name: "model get under a broader endpoint prefix", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.Endpoints = []string{"/v1/*"} }},
			path: "/v1/models/claude-opus-4-1", method: "GET", rule: RuleModelAllow, status: 403, enforced: true},
		{name: "shadow model get", opts: []func(*policyconfig.Config){shadow}, path: "/v1/models/claude-opus-4-1", method: "GET", rule: RuleModelAllow, status: 403, model: "claude-opus-4-1"},
		{name: "models prefix needs a suffix", path: "/v1/models/", method: "GET", rule: RuleEndpoints, status: 403, enforced: true},
		{name: "too large", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.MaxRequestBytes = 10 }}, path: "/v1/messages", body: msg("claude-haiku-4-5", 1, ""),
			rule: RuleMaxBytes, status: 413, enforced: true},
		{name: "streaming denied", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.DenyStreaming = true }}, path: "/v1/messages",
			body: msg("claude-haiku-4-5", 1, `,"stream":true`), rule: RuleStreaming, status: 403, enforced: true},
		{name: "streaming allowed", path: "/v1/messages", body: msg("claude-haiku-4-5", 1, `,"stream":true`), model: "claude-haiku-4-5"},
		{name: "deny all", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.Deny = &policyconfig.Deny{Reason: "no tenant selects namespace x"} }},
			path: "/v1/messages", body: msg("claude-haiku-4-5", 1, ""), rule: RuleDeny, status: 403, enforced: true},
		{name: "deny all in shadow still denies", opts: []func(*policyconfig.Config){shadow, func(c *policyconfig.Config) { c.Deny = &policyconfig.Deny{Reason: "r"} }},
			path: "/v1/models", method: "GET", rule: RuleDeny, status: 403, enforced: true},
		{name: "shadow model", opts: []func(*policyconfig.Config){shadow}, path: "/v1/messages", body: msg("claude-opus-4-1", 1, ""), rule: RuleModelAllow, status: 403, model: "claude-opus-4-1"},
		{name: "shadow does not clamp", opts: []func(*policyconfig.Config){shadow}, path: "/v1/messages", body: msg("claude-haiku-4-5", 64000, ""), model: "claude-haiku-4-5", wantBody: `"max_tokens":64000`},
		{name: "GET on messages", path: "/v1/messages", method: "GET", rule: RuleMethod, status: 405, enforced: true},
		{name: "PUT on messages", path: "/v1/messages", method: "PUT", body: msg("claude-haiku-4-5", 1, ""), rule: RuleMethod, status: 405, enforced: true},
		{name: "DELETE on a model", path: "/v1/models/claude-haiku-4-5", method: "DELETE", rule: RuleMethod, status: 405, enforced: true},
		{name: "POST on models", path: "/v1/models", body: []byte(`{"model":"claude-haiku-4-5"}`), rule: RuleMethod, status: 405, enforced: true},
		{name: "HEAD on models", path: "/v1/models", method: "HEAD", rule: RuleMethod, status: 405, enforced: true},
		{name: "shadow still refuses a method", opts: []func(*policyconfig.Config){shadow}, path: "/v1/messages/count_tokens", method: "PATCH", rule: RuleMethod, status: 405, enforced: true},
		{name: "DELETE on another allowed endpoint", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.Endpoints = []string{"/v1/messages/batches/*"} }},
			path: "/v1/messages/batches/msgbatch_1", method: "DELETE"},
		{name: "OPTIONS on another allowed endpoint", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.Endpoints = []string{"/v1/messages/batches/*"} }},
			path: "/v1/messages/batches/msgbatch_1", method: "OPTIONS", rule: RuleMethod, status: 405, enforced: true},
		{name: "empty body on messages", path: "/v1/messages", rule: RuleBody, status: 400, enforced: true},
		{name: "empty body on count_tokens in shadow", opts: []func(*policyconfig.Config){shadow}, path: "/v1/messages/count_tokens", rule: RuleBody, status: 400, enforced: true},
		{name: "empty body on a batch cancel", opts: []func(*policyconfig.Config){func(c *policyconfig.Config) { c.Endpoints = []string{"/v1/messages/batches/*"} }},
			path: "/v1/messages/batches/msgbatch_1/cancel"},
		{name: "shadow still refuses bad json", opts: []func(*policyconfig.Config){shadow}, path: "/v1/messages", body: []byte(`{`), rule: RuleBody, status: 400, enforced: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := policy(t, c.opts...)
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			d := p.Decide(Request{Method: method, Path: c.path, Body: c.body})
			if c.rule == "" {
				if d.Denial != nil {
					t.Fatalf("denied by %s: %s", d.Denial.Rule, d.Denial.Message)
				}
			} else {
				if d.Denial == nil {
					t.Fatalf("allowed, want denial by %s", c.rule)
				}
				if d.Denial.Rule != c.rule || d.Denial.Status != c.status || d.Denial.Shadow == c.enforced {
					t.Fatalf("denial %+v, want rule %s status %d enforced=%v", d.Denial, c.rule, c.status, c.enforced)
				}
				if !strings.Contains(d.Denial.Message, "rule "+c.rule) && c.rule != RuleModelRequired {
					t.Errorf("message %q does not name rule %s", d.Denial.Message, c.rule)
				}
			}
			if (c.rule == "" || c.model != "") && d.Model != c.model {
				t.Errorf("model = %q, want %q", d.Model, c.model)
			}
			if d.Path != c.wantPath {
				t.Errorf("forwarded path = %q, want %q", d.Path, c.wantPath)
			}
			if c.wantBody != "" && !strings.Contains(string(d.Body), c.wantBody) {
				t.Errorf("body %s does not contain %s", d.Body, c.wantBody)
			}
		})
	}
}

func TestDenialMessagesDoNotEchoTheBody(t *testing.T) {
	p := policy(t)
	secret := "sk-ant-api03-SECRET-in-the-prompt"
	d := p.Decide(Request{Method: "POST", Path: "/v1/messages", Body: []byte(`{"model":"claude-haiku-4-5","messages":"` + secret + `",}`)})
	if d.Denial == nil || strings.Contains(d.Denial.Message, secret) {
		t.Fatalf("denial %+v leaks the body", d.Denial)
	}
}

// body returns a Messages request of about size bytes shaped like a coding agent's conversation: a
// system prompt, then turns whose text is source code and tool output (escaped newlines and quotes, some
// non-ASCII), which is what large real requests are made of.
func body(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"model":"claude-haiku-4-5","max_tokens":64000,"stream":true,"system":[{"type":"text","text":"You are a careful coding agent."}],"messages":[`)
	code := `func (s *Server) handle(w http.ResponseWriter, r *http.Request) {\n\tif err := s.check(r); err != nil {\n\t\thttp.Error(w, \"denied: \"+err.Error(), 403) // é ✓\n\t\treturn\n\t}\n}\n`
	for i := 0; b.Len() < size-len(code)-200; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		b.WriteString(`{"role":"` + role + `","content":[{"type":"text","text":"`)
		for n := 0; n < 64 && b.Len() < size-len(code)-200; n++ {
			b.WriteString(code)
		}
		b.WriteString(`"}]},`)
	}
	b.WriteString(`{"role":"user","content":"go"}],"metadata":{"user_id":"u-123"}}`)
	return []byte(b.String())
}

// proseBody is a Messages request whose bulk is one long document (English prose with a newline every
// paragraph), the shape of summarisation and RAG requests.
func proseBody(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"model":"claude-haiku-4-5","max_tokens":64000,"messages":[{"role":"user","content":[{"type":"text","text":"Summarise this report:\n`)
	para := `The committee reviewed the quarterly figures and found that throughput rose by twelve percent while error rates fell; the remaining work is mostly on the ingestion path, where retries still dominate tail latency. `
	for b.Len() < size-len(para)-64 {
		b.WriteString(para)
		b.WriteString(`\n`)
	}
	b.WriteString(`"}]}]}`)
	return []byte(b.String())
}

// structuralBody is a worst case for the scanner: thousands of tiny messages, all keys and punctuation.
func structuralBody(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"model":"claude-haiku-4-5","max_tokens":64000,"messages":[`)
	turn := `{"role":"user","content":[{"type":"text","text":"hi"}]},`
	for b.Len() < size-len(turn) {
		b.WriteString(turn)
	}
	b.WriteString(`{"role":"user","content":"go"}]}`)
	return []byte(b.String())
}

func benchmarkDecide(b *testing.B, src []byte) {
	p := policy(b)
	buf := bytes.Clone(src)
	// The clamp rewrites max_tokens in place: each iteration puts back only the bytes it changed, so
	// the figure is the decision and the rewrite, not a copy of the whole body (reading the body off
	// the socket is that copy in the proxy).
	p.Decide(Request{Method: "POST", Path: "/v1/messages", Body: buf})
	lo, hi := changed(src, buf)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		copy(buf[lo:hi], src[lo:hi])
		d := p.Decide(Request{Method: "POST", Path: "/v1/messages", Body: buf})
		if d.Denial != nil || d.ClampedFrom != 64000 {
			b.Fatalf("unexpected decision %+v", d.Denial)
		}
	}
	// CPU time per op next to wall time: on a shared machine wall time includes waiting for a CPU.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// changed is the range [lo, hi) where a and b (of one length) differ; empty when they do not.
func changed(a, b []byte) (lo, hi int) {
	for lo < len(a) && a[lo] == b[lo] {
		lo++
	}
	for hi = len(a); hi > lo && a[hi-1] == b[hi-1]; hi-- {
	}
	return lo, hi
}

// cpuTime is the process's user+system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecide* measure the whole decision plus the in-place max_tokens clamp (the copy that
// restores the body each iteration is included: it is a few percent). 400KB is a coding agent's
// conversation (escape-dense source code), 400KBProse one long document, 400KBStructural a worst case.
func BenchmarkDecide2KB(b *testing.B)             { benchmarkDecide(b, body(2<<10)) }
func BenchmarkDecide400KB(b *testing.B)           { benchmarkDecide(b, body(400<<10)) }
func BenchmarkDecide400KBProse(b *testing.B)      { benchmarkDecide(b, proseBody(400<<10)) }
func BenchmarkDecide400KBStructural(b *testing.B) { benchmarkDecide(b, structuralBody(400<<10)) }

// tiers is the tier example from config/samples: basic → Haiku ≤4K, pro → Sonnet ≤200K, admin → Opus.
func tiers(c *policyconfig.Config) {
	c.Models = policyconfig.Models{
		Allow:     []string{"claude-haiku-*", "claude-sonnet-*", "claude-opus-*"},
		MaxTokens: []policyconfig.MaxTokensRule{{Model: "claude-opus-*", Limit: 32000, Action: policyconfig.ActionReject}},
	}
	c.EndUser = &policyconfig.EndUser{
		Mode:    policyconfig.EndUserStrict,
		Issuers: []policyconfig.Issuer{{URL: "https://idp.example", Audiences: []string{"a"}}},
		Rules: []policyconfig.ScopeRule{
			{Scopes: []string{"basic"}, Models: []string{"claude-haiku-*"}, MaxTokens: 4096},
			{Scopes: []string{"pro"}, Groups: []string{"research"}, Models: []string{"claude-sonnet-*", "claude-haiku-*"}, MaxTokens: 200000},
			{Scopes: []string{"admin"}, Models: []string{"claude-opus-*"}},
		},
	}
}

func TestScopeRules(t *testing.T) {
	p := policy(t, tiers)
	clamp := policy(t, tiers, func(c *policyconfig.Config) {
		c.Models.MaxTokens = []policyconfig.MaxTokensRule{{Model: "claude-haiku-*", Limit: 100000, Action: policyconfig.ActionClamp}}
	})
	user := func(scopes ...string) *User { return &User{Scopes: scopes} }
	cases := []struct {
		name       string
		p          *Policy
		user       *User
		path       string
		body       []byte
		rule       string
		status     int
		want       string // substring of the message
		wantMax    int64  // max_tokens forwarded, when allowed
		wantUnused bool
	}{
		{name: "basic uses haiku", user: user("basic"), body: msg("claude-haiku-4-5", 4096, ""), wantMax: 4096},
		{name: "basic over its ceiling", user: user("basic"), body: msg("claude-haiku-4-5", 4097, ""), rule: RuleScopes, status: 400,
			want: `max_tokens 4097 exceeds the 4096 allowed for model "claude-haiku-4-5" by the end user's scope "basic"`},
		{name: "basic asks for sonnet", user: user("basic"), body: msg("claude-sonnet-4-5", 10, ""), rule: RuleScopes, status: 403,
			want: `model "claude-sonnet-4-5" requires scope "pro" or group "research"; the end-user token carries none of them`},
		{name: "basic asks for opus", user: user("basic"), body: msg("claude-opus-4-1", 10, ""), rule: RuleScopes, status: 403,
			want: `requires scope "admin"`},
		{name: "pro and basic: most permissive ceiling applies", user: user("basic", "pro"), body: msg("claude-haiku-4-5", 100000, ""), wantMax: 100000},
		{name: "pro uses sonnet", user: user("pro"), body: msg("claude-sonnet-4-5", 200000, ""), wantMax: 200000},
		{name: "group grants like a scope", user: &User{Groups: []string{"research"}}, body: msg("claude-sonnet-4-5", 10, ""), wantMax: 10},
		{name: "admin has no ceiling of its own but the policy's applies", user: user("admin"), body: msg("claude-opus-4-1", 32001, ""), rule: RuleMaxTokens, status: 400},
		{name: "admin within the policy", user: user("admin"), body: msg("claude-opus-4-1", 32000, ""), wantMax: 32000},
		{name: "no scopes at all", user: user(), body: msg("claude-haiku-4-5", 10, ""), rule: RuleScopes, status: 403, want: `requires scope one of "basic", "pro" or group "research"`},
		{name: "models list needs no scope", user: user(), path: "/v1/models", wantUnused: true},
		{name: "model in the path is checked", user: user("basic"), path: "/v1/models/claude-opus-4-1", rule: RuleScopes, status: 403},
		{name: "policy allow-list still applies first", user: user("admin"), body: msg("gpt-4", 10, ""), rule: RuleModelAllow, status: 403},
		{name: "policy clamp action applies to the scope ceiling", p: clamp, user: user("basic"), body: msg("claude-haiku-4-5", 9000, ""), wantMax: 4096},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := tc.p
			if pol == nil {
				pol = p
			}
			path, method := tc.path, http.MethodGet
			if path == "" {
				path, method = "/v1/messages", http.MethodPost
			}
			d := pol.Decide(Request{Method: method, Path: path, Body: tc.body, User: tc.user})
			if tc.rule == "" {
				if d.Denial != nil {
					t.Fatalf("denied: %s", d.Denial.Message)
				}
				if !tc.wantUnused && d.Fields.MaxTokens != tc.wantMax {
					t.Fatalf("max_tokens forwarded = %d, want %d", d.Fields.MaxTokens, tc.wantMax)
				}
				return
			}
			if d.Denial == nil || d.Denial.Rule != tc.rule || d.Denial.Status != tc.status || !strings.Contains(d.Denial.Message, tc.want) {
				t.Fatalf("got %+v, want rule %s status %d message containing %q", d.Denial, tc.rule, tc.status, tc.want)
			}
		})
	}
}

// TestCeilingRefusalsNameWhoseCeiling: a refusal by the policy's own max_tokens ceiling gives its value;
// one by the platform's (the tenant's) says whose it is but not its value, which stays in the policy's
// status (callers, in gateway mode any end user, do not learn the platform's limits).
func TestCeilingRefusalsNameWhoseCeiling(t *testing.T) {
	p := policy(t, func(c *policyconfig.Config) {
		c.Models.MaxTokens = []policyconfig.MaxTokensRule{
			{Model: "claude-sonnet-*", Limit: 8192, Action: policyconfig.ActionReject},
			{Model: "*", Limit: 2048, Action: policyconfig.ActionReject, Source: policyconfig.SourceTenant},
		}
	})
	for _, tc := range []struct{ model, want, never string }{
		{"claude-sonnet-4-5", "max_tokens 9000 exceeds the policy's ceiling of 8192", ""},
		{"claude-haiku-4-5", `max_tokens 9000 exceeds the platform's ceiling for model "claude-haiku-4-5"`, "2048"},
	} {
		d := p.Decide(Request{Method: "POST", Path: "/v1/messages", Body: msg(tc.model, 9000, "")})
		if d.Denial == nil || !strings.Contains(d.Denial.Message, tc.want) || (tc.never != "" && strings.Contains(d.Denial.Message, tc.never)) {
			t.Errorf("%s: denial %+v, want a message with %q and without %q", tc.model, d.Denial, tc.want, tc.never)
		}
	}
}

// TestTokenlessGetsTheLowestTier: in Optional mode a request without an end-user token gets only what
// every scope rule grants, under the smallest of their ceilings, never more than the least-privileged
// token; only a policy that says tokenless Policy gives it the workload policy, as before.
func TestTokenlessGetsTheLowestTier(t *testing.T) {
	rules := func(tokenless string) func(c *policyconfig.Config) {
		return func(c *policyconfig.Config) {
			c.EndUser = &policyconfig.EndUser{
				Mode: policyconfig.EndUserOptional, Tokenless: tokenless,
				Issuers: []policyconfig.Issuer{{URL: "https://idp.example", Audiences: []string{"a"}}},
				Rules: []policyconfig.ScopeRule{
					{Scopes: []string{"basic"}, Models: []string{"claude-haiku-*"}, MaxTokens: 1024},
					{Scopes: []string{"pro"}, Models: []string{"claude-sonnet-*", "claude-haiku-*"}, MaxTokens: 64000},
				},
			}
		}
	}
	lowest, open := policy(t, rules("")), policy(t, rules(policyconfig.TokenlessPolicy))
	cases := []struct {
		name    string
		p       *Policy
		body    []byte
		want    string // "" when allowed
		wantMax int64
	}{
		{"a model every tier has, within the lowest ceiling", lowest, msg("claude-haiku-4-5", 1024, ""), "", 1024},
		{"over the lowest ceiling: the policy's Clamp lowers it", lowest, msg("claude-haiku-4-5", 3000, ""), "", 1024},
		{"a model only a higher tier has", lowest, msg("claude-sonnet-4-5", 10, ""), `model "claude-sonnet-4-5" needs an end-user token`, 0},
		{"tokenless Policy: the workload policy alone", open, msg("claude-sonnet-4-5", 8000, ""), "", 8000},
		{"tokenless Policy, the policy's ceiling", open, msg("claude-haiku-4-5", 3000, ""), "", 3000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.p.Decide(Request{Method: http.MethodPost, Path: "/v1/messages", Body: tc.body})
			switch {
			case tc.want == "" && (d.Denial != nil || d.Fields.MaxTokens != tc.wantMax):
				t.Fatalf("want allowed with max_tokens %d, got %+v (%d)", tc.wantMax, d.Denial, d.Fields.MaxTokens)
			case tc.want != "" && (d.Denial == nil || d.Denial.Rule != RuleScopes || !strings.Contains(d.Denial.Message, tc.want)):
				t.Fatalf("want refused by %s with %q, got %+v", RuleScopes, tc.want, d.Denial)
			}
		})
	}
}

// TestClampKeepsThinkingValid: a clamp must produce a request the API accepts, so a thinking budget
// that would no longer fit below the new max_tokens is lowered with it, or the request is refused
// when no valid budget exists.
func TestClampKeepsThinkingValid(t *testing.T) {
	thinking := func(budget int64) string {
		return fmt.Sprintf(`,"thinking":{"type":"enabled","budget_tokens":%d}`, budget)
	}
	lowTier := func(c *policyconfig.Config) {
		c.Models.MaxTokens[1].Limit = 1024
	}
	cases := []struct {
		name         string
		opts         []func(*policyconfig.Config)
		body         []byte
		wantBody     string
		clampedFrom  int64
		thinkingFrom int64
		denial       string // substring of the denial message, "" when allowed
	}{
		{name: "Claude Code's defaults on haiku", body: msg("claude-haiku-4-5", 32000, thinking(31999)),
			wantBody:    `"max_tokens":4096 ,` + `"messages":[{"role":"user","content":"hello"}],"thinking":{"type":"enabled","budget_tokens":4095 }`,
			clampedFrom: 32000, thinkingFrom: 31999},
		{name: "budget already fits", body: msg("claude-haiku-4-5", 32000, thinking(2048)),
			wantBody: `"budget_tokens":2048}`, clampedFrom: 32000},
		{name: "budget equal to the ceiling", body: msg("claude-haiku-4-5", 8000, thinking(4096)),
			wantBody: `"budget_tokens":4095}`, clampedFrom: 8000, thinkingFrom: 4096},
		{name: "adaptive thinking has no budget to fit", body: msg("claude-haiku-4-5", 32000, `,"thinking":{"type":"adaptive"}`),
			wantBody: `"thinking":{"type":"adaptive"}`, clampedFrom: 32000},
		{name: "disabled thinking keeps its stray budget", body: msg("claude-haiku-4-5", 32000, `,"thinking":{"type":"disabled","budget_tokens":9000}`),
			wantBody: `"budget_tokens":9000}`, clampedFrom: 32000},
		{name: "no room for thinking at the ceiling", opts: []func(*policyconfig.Config){lowTier}, body: msg("claude-haiku-4-5", 32000, thinking(31999)),
			denial: `max_tokens 32000 exceeds the policy's ceiling of 1024 for model "claude-haiku-4-5" (rule models.maxTokens "claude-haiku-*"), and at that ceiling extended thinking has no room (thinking.budget_tokens must be at least 1024 and below max_tokens)`},
		{name: "no room, but thinking off", opts: []func(*policyconfig.Config){lowTier}, body: msg("claude-haiku-4-5", 32000, ""),
			wantBody: `"max_tokens":1024 `, clampedFrom: 32000},
		{name: "under the ceiling nothing changes", body: msg("claude-haiku-4-5", 4000, thinking(3999)), wantBody: `"budget_tokens":3999}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := policy(t, c.opts...).Decide(Request{Method: http.MethodPost, Path: "/v1/messages", Body: c.body})
			if c.denial != "" {
				if d.Denial == nil || d.Denial.Status != http.StatusBadRequest || d.Denial.Rule != RuleMaxTokens || !strings.Contains(d.Denial.Message, c.denial) {
					t.Fatalf("denial = %+v, want 400 %s containing %q", d.Denial, RuleMaxTokens, c.denial)
				}
				return
			}
			if d.Denial != nil {
				t.Fatalf("denied by %s: %s", d.Denial.Rule, d.Denial.Message)
			}
			if !strings.Contains(string(d.Body), c.wantBody) {
				t.Errorf("forwarded body %s, want it to contain %s", d.Body, c.wantBody)
			}
			if d.ClampedFrom != c.clampedFrom || d.ThinkingClampedFrom != c.thinkingFrom {
				t.Errorf("clamped from max_tokens %d, budget %d; want %d, %d", d.ClampedFrom, d.ThinkingClampedFrom, c.clampedFrom, c.thinkingFrom)
			}
			// What goes upstream must be what the API accepts.
			if th := d.Fields.Thinking; th.Type == "enabled" && th.Budget >= d.Fields.MaxTokens {
				t.Errorf("forwarded budget_tokens %d is not below max_tokens %d", th.Budget, d.Fields.MaxTokens)
			}
		})
	}
}

// TestClampedThinkingUnderTheEndUsersCeiling: two clamps in a row (the policy's, then the end user's
// tier) keep the client's original values and leave a valid budget.
func TestClampedThinkingUnderTheEndUsersCeiling(t *testing.T) {
	p := policy(t, func(c *policyconfig.Config) {
		c.EndUser = &policyconfig.EndUser{Mode: policyconfig.EndUserStrict, Issuers: []policyconfig.Issuer{{URL: "https://idp.example", Audiences: []string{"a"}}},
			Rules: []policyconfig.ScopeRule{{Scopes: []string{"basic"}, Models: []string{"claude-haiku-*"}, MaxTokens: 2048}}}
	})
	d := p.Decide(Request{Method: http.MethodPost, Path: "/v1/messages", Body: msg("claude-haiku-4-5", 32000, `,"thinking":{"type":"enabled","budget_tokens":31999}`),
		User: &User{Scopes: []string{"basic"}}})
	if d.Denial != nil {
		t.Fatalf("denied: %s", d.Denial.Message)
	}
	if d.Fields.MaxTokens != 2048 || d.Fields.Thinking.Budget != 2047 || d.ClampedFrom != 32000 || d.ThinkingClampedFrom != 31999 {
		t.Fatalf("max_tokens %d budget %d (from %d, %d); want 2048, 2047 from 32000, 31999",
			d.Fields.MaxTokens, d.Fields.Thinking.Budget, d.ClampedFrom, d.ThinkingClampedFrom)
	}
}
