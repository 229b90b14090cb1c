package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

// sdkAPIVersion is the anthropic-version the official Go SDK in go.mod sends.
const sdkAPIVersion = "2026-10-21"

// TestNewestSDKVersionAndBearerKeys: the official SDK sends anthropic-version 2026-10-21 and its API key
// as "Authorization: Bearer". Without end users, in Optional mode and in Strict mode, a placeholder key
// in that header (the well-known one, or any other value that is not a JWT) is never taken for an
// end-user token and never forwarded; a real end-user token in the same header is verified and
// stripped; the version reaches the upstream as sent.
func TestNewestSDKVersionAndBearerKeys(t *testing.T) {
	is := oidctest.Start(t)
	endUser := func(mode string) string {
		return fmt.Sprintf(`
endUser:
  mode: %s
  issuers:
  - {url: %s, audiences: [claude-assistant], caCert: %q}
  rules:
  - {scopes: [basic], models: ["claude-haiku-*"], maxTokens: 4096}
`, mode, is.URL, is.CACert)
	}
	user := option.WithAuthToken(is.Sign(is.Claims("alice", "claude-assistant", "basic")))
	cases := []struct {
		name   string
		config string
		key    string
		opts   []option.RequestOption
		status int // 200, or the refusal's status
		rule   string
	}{
		{name: "no end users, the placeholder key", key: wellknown.PlaceholderAPIKey, status: 200},
		{name: "no end users, another placeholder", key: "dummy", status: 200},
		{name: "Optional, the placeholder key is no token", config: endUser("Optional"), key: wellknown.PlaceholderAPIKey, status: 200},
		{name: "Optional, another placeholder is no token", config: endUser("Optional"), key: "not-a-key", status: 200},
		{name: "Optional, with a user token", config: endUser("Optional"), key: wellknown.PlaceholderAPIKey, opts: []option.RequestOption{user}, status: 200},
		{name: "Strict, the placeholder key is no token", config: endUser("Strict"), key: wellknown.PlaceholderAPIKey, status: 401, rule: "endUser.token"},
		{name: "Strict, another placeholder is no token", config: endUser("Strict"), key: "dummy", status: 401, rule: "endUser.token"},
		{name: "Strict, with a user token", config: endUser("Strict"), key: wellknown.PlaceholderAPIKey, opts: []option.RequestOption{user}, status: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e *env
			if c.config == "" {
				e = newEnv(t, "")
			} else {
				e = newEnv(t, c.config, withEndUsers(t, nil))
			}
			var sentAuth string
			client := anthropic.NewClient(option.WithBaseURL(e.srv.URL), option.WithAPIKey(c.key), option.WithMaxRetries(0),
				option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
					if v := r.Header.Get("anthropic-version"); v != sdkAPIVersion {
						t.Errorf("the SDK sent anthropic-version %q; this test is about %s", v, sdkAPIVersion)
					}
					sentAuth = r.Header.Get("Authorization")
					return next(r)
				}))
			_, err := client.Messages.New(context.Background(), haiku(10), c.opts...)
			if !strings.HasPrefix(sentAuth, "Bearer ") {
				t.Fatalf("the SDK sent Authorization %q, want a bearer credential", sentAuth)
			}
			var apiErr *anthropic.Error
			switch {
			case c.status == 200 && err != nil:
				t.Fatalf("request failed: %v", err)
			case c.status != 200 && (!errors.As(err, &apiErr) || apiErr.StatusCode != c.status || apiErr.Response.Header.Get("x-claude-guard-rule") != c.rule):
				t.Fatalf("err = %v, want %d rule %s", err, c.status, c.rule)
			}
			reqs := e.fake.Requests()
			if c.status != 200 {
				if len(reqs) != 0 {
					t.Fatal("a refused request reached the upstream")
				}
				return
			}
			up := reqs[len(reqs)-1]
			if got := up.Header.Get("Anthropic-Version"); got != sdkAPIVersion {
				t.Errorf("anthropic-version reached the upstream as %q", got)
			}
			if got := up.Header.Get("Authorization"); got != "" {
				t.Errorf("Authorization %q reached the upstream", got)
			}
			if got := up.Header.Get("X-Api-Key"); got != realKey {
				t.Errorf("the upstream got x-api-key %q, want the tenant's key", got)
			}
		})
	}
}
