package policyconfig

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const head = `
apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
`

const minimal = head + `credentials: {file: {path: /etc/key}}
models: {allow: ["claude-haiku-*"]}
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != DefaultListen || c.Server.Upstream != DefaultUpstream || c.MaxRequestBytes != DefaultMaxRequestBytes ||
		!reflect.DeepEqual(c.Endpoints, DefaultEndpoints) || c.Limits.Backend != BackendLocal || c.Limits.FailureMode != FailClosed {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestParseJSONAndYAMLAgree(t *testing.T) {
	y, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	js, err := Marshal(y)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse(js)
	if err != nil {
		t.Fatalf("rendered JSON does not parse back: %v", err)
	}
	if !reflect.DeepEqual(y, j) {
		t.Fatalf("YAML and its JSON rendering differ:\n%+v\n%+v", y, j)
	}
	js2, _ := Marshal(j)
	if !bytes.Equal(js, js2) || Hash(js) != Hash(js2) || len(Hash(js)) != 16 {
		t.Fatalf("Marshal is not deterministic")
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"unknown field", minimal + "bogus: 1\n", `unknown field "bogus"`},
		{"wrong version", strings.Replace(minimal, "sidecar.claudeguard.io/v1", "v2", 1), "apiVersion"},
		{"no credentials", "apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\nmodels: {allow: [x]}\n", "credentials: exactly one"},
		{"two credentials", head + "models: {allow: [x]}\ncredentials: {file: {path: /k}, env: {name: K}}\n", "got 2"},
		{"bad glob", strings.Replace(minimal, "claude-haiku-*", "Claude Haiku", 1), "models.allow[0]"},
		{"bad endpoint", minimal + "endpoints: [/v1/*/x]\n", "endpoints[0]"},
		{"bad upstream", minimal + "server: {upstream: ftp://x}\n", "server.upstream"},
		{"bad max tokens action", head + "credentials: {env: {name: K}}\nmodels: {allow: [x], maxTokens: [{model: x, limit: 5, action: Drop}]}\n", "models.maxTokens[0].action"},
		{"limit window", minimal + "limits: {rules: [{name: a, key: Workload, window: Year, requests: 1}]}\n", "limits.rules[0].window"},
		{"tenant limit per session", minimal + "limits: {rules: [{name: a, source: tenant, key: Session, window: Day, requests: 1}]}\n", "limits.rules[0].key: a tenant ceiling cannot be counted per Session"},
		{"limit key", minimal + "limits: {rules: [{name: a, key: Pod, window: Day, requests: 1}]}\n", "limits.rules[0].key"},
		{"limit needs an amount", minimal + "limits: {rules: [{name: a, key: Workload, window: Day}]}\n", "limits.rules[0]: requests and tokens"},
		{"duplicate limit", minimal + "limits: {rules: [{name: a, key: Workload, window: Day, requests: 1}, {name: a, key: Workload, window: Day, requests: 1}]}\n", "duplicate rule name"},
		{"budget one of", minimal + "budgets: [{name: b, key: Namespace, window: Month, tokens: 5, usd: \"1\"}]\n", "budgets[0]: exactly one"},
		{"deny needs a reason", minimal + "deny: {reason: \"\"}\n", "deny.reason"},
		{"duration", head + "models: {allow: [x]}\ncredentials: {vault: {authMethod: kubernetes, role: r, path: p, refreshInterval: 5}}\n", "duration must be a string"},
		{"two documents", `{"apiVersion":"x"} {"kind":"y"}`, "apiVersion"},
		{"duplicate key yaml", minimal + "models: {allow: [\"*\"]}\n", `key "models" already set`},
		{"duplicate key json", `{"apiVersion":"sidecar.claudeguard.io/v1","kind":"SidecarConfig","credentials":{"env":{"name":"K"}},"models":{"allow":["a"]},"models":{"allow":["*"]}}`, `key "models" already set`},
		{"negative bytes", minimal + "maxRequestBytes: -1\n", "maxRequestBytes"},
		{"redis needs a URL", minimal + "limits: {backend: Redis}\n", "limits.redisURL: is required"},
		{"redis URL scheme", minimal + "limits: {backend: Redis, redisURL: \"http://:hunter2@r:6379\"}\n", "limits.redisURL: the Redis URL must start with redis://, rediss://"},
		{"redis user and URL credentials", minimal + "limits: {backend: Redis, redisUser: cg-a, redisURL: \"redis://:hunter2@r:6379\"}\n", "limits.redisURL: must not hold credentials"},
		{"redis user without redis", minimal + "limits: {backend: Local, redisUser: cg-a}\n", "limits.redisUser: is only used with backend Redis"},
		{"broker without a user", minimal + "limits: {backend: Redis, redisURL: \"redis://r:6379\", redisBroker: {url: \"https://b:9444\", id: \"spiffe://td/ns/x/sa/y\"}}\n", "limits.redisBroker: is only used with limits.redisUser"},
		{"broker over http", minimal + "limits: {backend: Redis, redisUser: cg-a, redisURL: \"redis://r:6379\", redisBroker: {url: \"http://b:9444\", id: \"spiffe://td/ns/x/sa/y\"}}\n", "limits.redisBroker.url: must be https://host:port"},
		{"broker id", minimal + "limits: {backend: Redis, redisUser: cg-a, redisURL: \"redis://r:6379\", redisBroker: {url: \"https://b:9444\", id: \"spiffe://td\"}}\n", "limits.redisBroker.id: must be a SPIFFE ID with a path"},
		{"redis URL unparsable", minimal + "limits: {backend: Redis, redisURL: \"redis://:hunter2@r:port\"}\n", "limits.redisURL: failed to parse the Redis URL"},
		{"hs256", minimal + "endUser: {mode: Strict, issuers: [{url: https://i, audiences: [a], algorithms: [HS256]}]}\n", "endUser.issuers[0].algorithms[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil {
				t.Fatalf("Parse accepted %q", c.doc)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q repeats a password", err)
			}
		})
	}
}

func TestDenyConfigNeedsNoCredentials(t *testing.T) {
	c, err := Parse([]byte("apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\ndeny: {reason: no tenant}\nmodels: {allow: []}\n"))
	if err != nil || c.Deny.Reason != "no tenant" {
		t.Fatalf("deny config: %v", err)
	}
}

func TestVaultDefaults(t *testing.T) {
	c, err := Parse([]byte("apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\ncredentials: {vault: {authMethod: kubernetes, role: r, path: team/a}}\nmodels: {allow: [x]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	v := c.Credentials.Vault
	if v.Mount != DefaultVaultMount || v.Field != DefaultVaultField || v.AuthMount != "kubernetes" || v.RefreshInterval.Duration != DefaultRefresh || v.MaxStaleness.Duration != time.Hour {
		t.Fatalf("vault defaults: %+v", v)
	}
}

// TestSampleParses keeps the documented standalone sample valid.
func TestSampleParses(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "sidecar-standalone.yaml"))
	if os.IsNotExist(err) {
		t.Skip("sample not present")
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b)
	if err != nil {
		t.Fatalf("config/samples/sidecar-standalone.yaml: %v", err)
	}
	if len(c.Models.Allow) == 0 {
		t.Fatal("the sample must allow at least one model")
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts renders to JSON that parses
// back to the same config (so the controller's rendering and the sidecar's reading cannot drift).
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(`{"apiVersion":"sidecar.claudeguard.io/v1","kind":"SidecarConfig","credentials":{"env":{"name":"K"}},"models":{"allow":["*"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		js, err := Marshal(c)
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		c2, err := Parse(js)
		if err != nil {
			t.Fatalf("rendered config does not parse: %v\n%s", err, js)
		}
		js2, _ := Marshal(c2)
		if !bytes.Equal(js, js2) {
			t.Fatalf("render is not stable:\n%s\n%s", js, js2)
		}
	})
}
