package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// listIDs lists every model through the SDK's auto-paging with pages of limit, and returns the ids.
func listIDs(t *testing.T, e *env, limit int64, opts ...option.RequestOption) []string {
	t.Helper()
	var ids []string
	it := e.client.Models.ListAutoPaging(context.Background(), anthropic.ModelListParams{Limit: anthropic.Int(limit)}, opts...)
	for it.Next() {
		ids = append(ids, it.Current().ID)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("models list: %v", err)
	}
	return ids
}

// TestModelsListShowsOnlyUsableModels: GET /v1/models offers nothing the policy, the tenant's rules in
// it or the caller's end-user tier would refuse; a dated model allowed only under its alias is listed
// under the alias; the policy's aliases are listed; paging works the API's way over what remains.
func TestModelsListShowsOnlyUsableModels(t *testing.T) {
	is := oidctest.Start(t)
	tiers := newEnv(t, tierConfig(is, ""), withEndUsers(t, nil))
	token := func(scope string) option.RequestOption {
		return option.WithAuthToken(is.Sign(is.Claims("alice", "claude-assistant", scope)))
	}
	cases := []struct {
		name string
		env  *env
		opts []option.RequestOption
		want []string
	}{
		// Base policy: haiku by glob, sonnet 4.5 by its alias only, haiku 3* denied, alias fast.
		{name: "policy", env: newEnv(t, ""), want: []string{"claude-haiku-4-5-20251001", "claude-sonnet-4-5", "fast"}},
		// The tenant's model rules arrive rendered into the policy's allow and deny lists.
		{name: "a narrower allow list", env: newEnv(t, "", narrowModels("claude-sonnet-*")), want: []string{"claude-sonnet-4-5-20250929"}},
		{name: "shadow mode changes no response", env: newEnv(t, "shadowMode: true\n"), want: []string{"claude-opus-4-5-20251101", "claude-haiku-4-5-20251001",
			"claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-3-5-haiku-20241022"}},
		{name: "basic tier", env: tiers, opts: []option.RequestOption{token("basic")}, want: []string{"claude-haiku-4-5-20251001", "fast"}},
		{name: "pro tier", env: tiers, opts: []option.RequestOption{token("pro")}, want: []string{"claude-sonnet-4-5"}},
		{name: "admin tier: opus is not in the policy", env: tiers, opts: []option.RequestOption{token("admin")}, want: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, limit := range []int64{1, 2, 20} {
				if got := listIDs(t, c.env, limit, c.opts...); !slices.Equal(got, c.want) {
					t.Fatalf("pages of %d list %q, want %q", limit, got, c.want)
				}
			}
		})
	}
}

// TestModelsListPaging: the sidecar pages the filtered list with the API's cursors, and refuses paging
// the API would refuse.
func TestModelsListPaging(t *testing.T) {
	e := newEnv(t, "")
	get := func(query string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/models?"+query, nil)
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %s", query, b)
		}
		return resp.StatusCode, m
	}
	cases := []struct {
		query          string
		ids            string
		hasMore        bool
		first, last    any
		status         int
		messageContain string
	}{
		{query: "limit=1", ids: "claude-haiku-4-5-20251001", hasMore: true, first: "claude-haiku-4-5-20251001", last: "claude-haiku-4-5-20251001", status: 200},
		{query: "limit=1&after_id=claude-haiku-4-5-20251001", ids: "claude-sonnet-4-5", hasMore: true, first: "claude-sonnet-4-5", last: "claude-sonnet-4-5", status: 200},
		{query: "after_id=claude-sonnet-4-5", ids: "fast", hasMore: false, first: "fast", last: "fast", status: 200},
		{query: "limit=1&before_id=fast", ids: "claude-sonnet-4-5", hasMore: true, first: "claude-sonnet-4-5", last: "claude-sonnet-4-5", status: 200},
		{query: "before_id=claude-haiku-4-5-20251001", ids: "", hasMore: false, first: nil, last: nil, status: 200},
		{query: "limit=0", status: 400, messageContain: "limit must be an integer from 1 to 1000"},
		{query: "limit=1001", status: 400, messageContain: "limit must be an integer from 1 to 1000"},
		{query: "after_id=a&before_id=b", status: 400, messageContain: "not both"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			status, m := get(c.query)
			if status != c.status {
				t.Fatalf("status %d, want %d: %v", status, c.status, m)
			}
			if c.status != 200 {
				msg, _ := m["error"].(map[string]any)["message"].(string)
				if !strings.Contains(msg, c.messageContain) || !strings.Contains(msg, "rule models.list") {
					t.Fatalf("message %q, want it to contain %q and the rule", msg, c.messageContain)
				}
				return
			}
			var ids []string
			for _, d := range m["data"].([]any) {
				ids = append(ids, d.(map[string]any)["id"].(string))
			}
			if strings.Join(ids, ",") != c.ids || m["has_more"] != c.hasMore || m["first_id"] != c.first || m["last_id"] != c.last {
				t.Fatalf("page %q has_more %v first %v last %v; want %q %v %v %v", ids, m["has_more"], m["first_id"], m["last_id"], c.ids, c.hasMore, c.first, c.last)
			}
		})
	}
	// The sidecar asked the upstream for the whole list every time, whatever the caller's cursor.
	for _, r := range e.fake.Requests() {
		if r.Path == "/v1/models" && r.Query != "limit=1000" {
			t.Errorf("upstream list query %q, want limit=1000", r.Query)
		}
	}
}

// narrowModels replaces the policy's allowed models (and drops its aliases).
func narrowModels(allow ...string) func(*proxy.Options) {
	return func(o *proxy.Options) {
		c := *o.Policy().Config
		c.Models.Allow, c.Models.Aliases = allow, nil
		p := decide.Compile(&c, "narrow")
		o.Policy = func() *decide.Policy { return p }
	}
}
