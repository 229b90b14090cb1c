package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// tierConfig is config/samples' tier example as a rendered sidecar config, trusting issuer.
func tierConfig(is *oidctest.Issuer, extra string) string {
	return fmt.Sprintf(`
endUser:
  mode: Strict
  issuers:
  - url: %s
    audiences: [claude-assistant]
    caCert: %q
  rules:
  - {scopes: [basic], models: ["claude-haiku-*"], maxTokens: 4096}
  - {scopes: [pro], models: ["claude-sonnet-*"], maxTokens: 200000}
  - {scopes: [admin], models: ["claude-opus-*"]}
%s`, is.URL, is.CACert, extra)
}

// withEndUsers gives the proxy a started authenticator for the config's endUser section.
func withEndUsers(t *testing.T, replay enduser.ReplayStore) func(*proxy.Options) {
	return func(o *proxy.Options) {
		a := oidctest.StartAuthenticator(t, enduser.Options{Config: o.Policy().Config.EndUser, Replay: replay})
		o.EndUser = func() *enduser.Authenticator { return a }
	}
}

func haiku(maxTokens int64) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: maxTokens, Messages: userMsg("SECRET-PROMPT")}
}

// The app's SDK sends the user's token as its auth token; the sidecar verifies it, applies the tier
// and forwards with the real key only.
func TestEndUserTiersThroughTheSDK(t *testing.T) {
	is := oidctest.Start(t)
	e := newEnv(t, tierConfig(is, "audit: {endUserMetricLabel: true}"), withEndUsers(t, nil))
	as := func(tok string) option.RequestOption { return option.WithAuthToken(tok) }
	basic := is.Sign(is.Claims("alice", "claude-assistant", "basic"))

	msg, err := e.client.Messages.New(context.Background(), haiku(1000), as(basic))
	if err != nil {
		t.Fatalf("basic user calling Haiku: %v", err)
	}
	if msg.Model != "claude-haiku-4-5" {
		t.Fatalf("model %s", msg.Model)
	}
	last := e.fake.Requests()[len(e.fake.Requests())-1]
	if got := last.Header.Get("Authorization"); got != "" {
		t.Fatalf("the end-user token reached the upstream: Authorization %q", got)
	}
	if got := last.Header.Get("X-Api-Key"); got != realKey {
		t.Fatalf("upstream key %q", got)
	}

	cases := []struct {
		name   string
		token  string
		params anthropic.MessageNewParams
		status int
		typ    string
		want   string
	}{
		{"basic asks for sonnet", basic, anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 10, Messages: userMsg("hi")},
			403, "permission_error", `model "claude-sonnet-4-5" requires scope "pro"`},
		{"no token", "", haiku(10), 401, "authentication_error", "an end-user token is required"},
		{"expired token", is.Sign(func() map[string]any {
			c := is.Claims("alice", "claude-assistant", "basic")
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			return c
		}()), haiku(10), 401, "authentication_error", "token expired at"},
		{"wrong audience", is.Sign(is.Claims("alice", "another-app", "basic")), haiku(10), 401, "authentication_error", `audience ["another-app"] is not accepted`},
		{"alg none", oidctest.Unsigned(is.Claims("alice", "claude-assistant", "admin")), haiku(10), 401, "authentication_error", `signing algorithm "none" is not allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []option.RequestOption
			if tc.token != "" {
				opts = append(opts, as(tc.token))
			}
			_, err := e.client.Messages.New(context.Background(), tc.params, opts...)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("want an API error, got %v", err)
			}
			var body struct {
				Error struct{ Type, Message string }
			}
			if err := json.Unmarshal([]byte(apiErr.RawJSON()), &body); err != nil {
				t.Fatal(err)
			}
			if apiErr.StatusCode != tc.status || body.Error.Type != tc.typ || !strings.Contains(body.Error.Message, tc.want) {
				t.Fatalf("got %d %s, want %d %s containing %q", apiErr.StatusCode, apiErr.RawJSON(), tc.status, tc.typ, tc.want)
			}
			if tc.token != "" && strings.Contains(apiErr.RawJSON(), tc.token) {
				t.Fatal("the error echoes the token")
			}
		})
	}

	recs := e.audit.records(t)
	if recs[0]["endUser"] != "alice" || recs[0]["decision"] != "allow" {
		t.Fatalf("first audit record: %v", recs[0])
	}
	if recs[1]["rule"] != "endUser.rules" || recs[1]["endUser"] != "alice" {
		t.Fatalf("scope denial audit record: %v", recs[1])
	}
	if recs[2]["rule"] != "endUser.token" {
		t.Fatalf("missing token audit record: %v", recs[2])
	}
	if v := testutil.ToFloat64(e.metrics.EndUserRequests.WithLabelValues("alice", "allow")); v != 1 {
		t.Fatalf("end-user metric = %v", v)
	}
	for _, r := range recs {
		for _, v := range r {
			if s, ok := v.(string); ok && strings.Count(s, ".") == 2 && len(s) > 100 {
				t.Fatalf("audit record holds something token-like: %v", r)
			}
		}
	}
}

func TestEndUserMetricLabelIsOptIn(t *testing.T) {
	is := oidctest.Start(t)
	e := newEnv(t, tierConfig(is, ""), withEndUsers(t, nil))
	if _, err := e.client.Messages.New(context.Background(), haiku(10), option.WithAuthToken(is.Sign(is.Claims("bob", "claude-assistant", "basic")))); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(e.metrics.EndUserRequests); n != 0 {
		t.Fatalf("%d end-user series without the opt-in", n)
	}
	if recs := e.audit.records(t); recs[0]["endUser"] != "bob" {
		t.Fatalf("the audit record must name the user by default: %v", recs[0])
	}
}

// Replay protection through the proxy, with the end user as a limit key: each user has its own quota.
func TestEndUserReplayAndPerUserLimits(t *testing.T) {
	is := oidctest.Start(t)
	extra := `
limits:
  rules:
  - {name: per-user, key: EndUser, window: Minute, requests: 2}
`
	c := tierConfig(is, extra)
	c = strings.Replace(c, "  rules:\n  - {scopes", "  replay: {}\n  rules:\n  - {scopes", 1)
	e := newEnv(t, c, func(o *proxy.Options) {
		// The limiter is the replay store, as in the sidecar.
		replay, ok := o.Limiter.(enduser.ReplayStore)
		if !ok {
			t.Fatalf("%T is not a replay store", o.Limiter)
		}
		withEndUsers(t, replay)(o)
	})
	call := func(tok string) int {
		_, err := e.client.Messages.New(context.Background(), haiku(10), option.WithAuthToken(tok))
		var apiErr *anthropic.Error
		if errors.As(err, &apiErr) {
			return apiErr.StatusCode
		}
		if err != nil {
			t.Fatal(err)
		}
		return http.StatusOK
	}
	alice := is.Sign(is.Claims("alice", "claude-assistant", "basic"))
	if s := call(alice); s != 200 {
		t.Fatalf("first use: %d", s)
	}
	if s := call(alice); s != 401 {
		t.Fatalf("replayed token: %d, want 401", s)
	}
	// Fresh tokens: alice has one request left of two (the replay was refused before the limiter).
	if s := call(is.Sign(is.Claims("alice", "claude-assistant", "basic"))); s != 200 {
		t.Fatalf("alice's second request: %d", s)
	}
	if s := call(is.Sign(is.Claims("alice", "claude-assistant", "basic"))); s != 429 {
		t.Fatalf("alice's third request: %d, want 429", s)
	}
	if s := call(is.Sign(is.Claims("bob", "claude-assistant", "basic"))); s != 200 {
		t.Fatalf("bob has his own quota: %d", s)
	}
	recs := e.audit.records(t)
	if recs[1]["rule"] != "endUser.replay" {
		t.Fatalf("replay audit record: %v", recs[1])
	}
}

// A token in a custom header is verified like a bearer token and never forwarded.
func TestEndUserCustomHeaderIsStripped(t *testing.T) {
	is := oidctest.Start(t)
	cfg := strings.Replace(tierConfig(is, ""), "  mode: Strict\n", "  mode: Strict\n  header: X-User-Token\n", 1)
	e := newEnv(t, cfg, withEndUsers(t, nil))
	tok := is.Sign(is.Claims("dana", "claude-assistant", "basic"))
	if _, err := e.client.Messages.New(context.Background(), haiku(10), option.WithHeader("X-User-Token", tok)); err != nil {
		t.Fatal(err)
	}
	reqs := e.fake.Requests()
	if got := reqs[len(reqs)-1].Header.Get("X-User-Token"); got != "" {
		t.Fatalf("the end-user token reached the upstream in X-User-Token")
	}
	// Nor in a spelling a lenient server reads as the same header.
	if _, err := e.client.Messages.New(context.Background(), haiku(10), option.WithHeader("X-User-Token", tok), option.WithHeaderAdd("x_user_token_", tok)); err != nil {
		t.Fatal(err)
	}
	reqs = e.fake.Requests()
	for name := range reqs[len(reqs)-1].Header {
		if strings.Contains(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "user-token") {
			t.Fatalf("the end-user token reached the upstream in %s", name)
		}
	}
	if recs := e.audit.records(t); recs[0]["endUser"] != "dana" {
		t.Fatalf("audit record: %v", recs[0])
	}
}

// In shadow mode a refused token is recorded and the request goes on without a user (so no scope rule
// applies to it).
func TestEndUserShadowMode(t *testing.T) {
	is := oidctest.Start(t)
	e := newEnv(t, tierConfig(is, "shadowMode: true\n"), withEndUsers(t, nil))
	expired := is.Claims("erin", "claude-assistant", "basic")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	if _, err := e.client.Messages.New(context.Background(), haiku(10), option.WithAuthToken(is.Sign(expired))); err != nil {
		t.Fatalf("shadow mode blocked the request: %v", err)
	}
	recs := e.audit.records(t)
	if recs[0]["decision"] != "shadow_deny" || recs[0]["rule"] != "endUser.token" || recs[0]["endUser"] != nil {
		t.Fatalf("audit record: %v", recs[0])
	}
}

// A shadowed request is recorded with the rule enforcement would have returned: each stage's refusal
// is one denial, and the first one wins in both modes (a refused token before a model rule before a
// limit).
func TestShadowRecordsTheRuleEnforcementReturns(t *testing.T) {
	is := oidctest.Start(t)
	expired := is.Claims("erin", "claude-assistant", "basic")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	expiredToken, basic := is.Sign(expired), is.Sign(is.Claims("alice", "claude-assistant", "basic"))
	opus := anthropic.MessageNewParams{Model: "claude-opus-4-1", MaxTokens: 10, Messages: userMsg("hi")}
	limit := "limits: {rules: [{name: rpm, key: Namespace, window: Minute, requests: 1}]}\n"
	cases := []struct {
		name   string
		token  string
		params anthropic.MessageNewParams
		rule   string
	}{
		{"refused token before model rule", expiredToken, opus, "endUser.token"},
		{"model rule before limit", basic, opus, "models.allow"},
		{"limit", basic, haiku(10), "limits/policy/rpm"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, shadow := range []bool{false, true} {
				e := newEnv(t, tierConfig(is, limit+fmt.Sprintf("shadowMode: %v\n", shadow)), withEndUsers(t, nil))
				// The first call takes the limit's one request.
				if _, err := e.client.Messages.New(context.Background(), haiku(10), option.WithAuthToken(basic)); err != nil {
					t.Fatalf("shadow=%v: first call: %v", shadow, err)
				}
				var hdr http.Header
				_, err := e.client.Messages.New(context.Background(), c.params, option.WithAuthToken(c.token),
					option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
						resp, err := next(r)
						if resp != nil {
							hdr = resp.Header
						}
						return resp, err
					}))
				rec := e.audit.records(t)[1]
				want := map[bool]string{false: "deny", true: "shadow_deny"}[shadow]
				if rec["rule"] != c.rule || rec["decision"] != want {
					t.Fatalf("shadow=%v: audit rule %v decision %v, want %s %s", shadow, rec["rule"], rec["decision"], c.rule, want)
				}
				switch {
				case shadow && err != nil:
					t.Fatalf("shadow mode refused the call: %v", err)
				case !shadow && (err == nil || hdr.Get(proxy.HeaderRule) != c.rule):
					t.Fatalf("enforced: err %v, rule header %q; want %s", err, hdr.Get(proxy.HeaderRule), c.rule)
				}
			}
		})
	}
}
