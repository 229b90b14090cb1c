//go:build integration

// Package tiers runs config/samples' tier example end to end: the sample applied with kubectl to a real
// API server (envtest) with the controllers and the injection webhook, a real OIDC issuer signing the
// users' tokens, a real Redis as the shared limit and replay backend, and the injected pods' sidecars
// (two replicas, run one after the other by internal/test/podrun) serving the official SDK.
package tiers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisacl"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/podrun"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

const (
	upstreamKey = "sk-ant-tiers-00000000000000000000000000"
	audience    = "claude-assistant" // the sample's
)

// tenant admits the sample in namespace team-a with a key from a Secret (the sample's Vault source
// needs SPIRE and Vault, which test/vault covers).
const tenant = `
apiVersion: v1
kind: Namespace
metadata: {name: claude-guard-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {claudeguard.io/tenant: team-a}}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeTenant
metadata: {name: team-a}
spec:
  namespaceSelector: {matchLabels: {claudeguard.io/tenant: team-a}}
  models: {allow: ["claude-haiku-*", "claude-sonnet-*", "claude-opus-*"], maxTokens: 200000}
  credentials: {allowedSources: [SecretRef]}
---
apiVersion: v1
kind: Secret
metadata: {name: anthropic, namespace: team-a}
stringData: {api-key: ` + upstreamKey + `}
`

// sample reads the tier sample and points it at this test's issuer and Secret; everything else (the
// tiers, replay protection, the Redis backend, the per-user daily token limit) is the sample's own.
func sample(t *testing.T, is *oidctest.Issuer) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "claudeguard_v1alpha1_claudeaccesspolicy_tiers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var u unstructured.Unstructured
	if err := yaml.Unmarshal(raw, &u.Object); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unstructured.SetNestedMap(u.Object, map[string]any{"secretRef": map[string]any{"name": "anthropic", "key": "api-key"}}, "spec", "credentials"))
	issuers, _, _ := unstructured.NestedSlice(u.Object, "spec", "endUser", "issuers")
	if len(issuers) != 1 || issuers[0].(map[string]any)["audiences"].([]any)[0] != audience {
		t.Fatalf("the sample's issuer changed: %v", issuers)
	}
	issuers[0].(map[string]any)["url"] = is.URL
	issuers[0].(map[string]any)["caBundle"] = is.CACert
	must(unstructured.SetNestedSlice(u.Object, issuers, "spec", "endUser", "issuers"))
	if b, _, _ := unstructured.NestedString(u.Object, "spec", "limits", "backend"); b != "Redis" {
		t.Fatalf("the sample's limits backend is %q, want Redis", b)
	}
	out, err := yaml.Marshal(u.Object)
	must(err)
	return string(out)
}

func pod(name string) string {
	return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `, namespace: team-a, labels: {app: assistant}}
spec:
  serviceAccountName: assistant
  containers: [{name: app, image: example.com/assistant:1}]
`
}

type harness struct {
	t   *testing.T
	cli *testenv.KubectlCLI
}

// run runs kubectl and fails the test if it fails.
func (h *harness) run(stdin string, args ...string) string {
	h.t.Helper()
	out, err := h.cli.Run(stdin, args...)
	if err != nil {
		h.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestTierSampleEndToEnd(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	// The operator's Redis has an admin password that only the manager knows; sidecars authenticate as
	// their namespace's ACL user with the password the webhook mounts from Secret claude-guard-redis.
	const adminPassword = "tiers-admin-pw"
	redis := testservers.StartRedis(t, testservers.RedisOptions{Password: adminPassword})
	admin, err := redisacl.NewAdmin(redis.URL, []byte("tiers-test-master-secret-32-bytes!"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close() }()
	redisURL, err := redisacl.PublicURL(redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	is := oidctest.Start(t)
	fake := fakeupstream.New(upstreamKey)
	fake.Record = true
	up := httptest.NewServer(fake)
	defer up.Close()

	env, err := testenv.Start(testenv.WithWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	dir := t.TempDir()
	injectConfig := inject.DefaultConfig()
	injectConfig.RedisPassword = true
	h := &harness{t: t}
	if h.cli, err = env.KubectlCLI(dir); err != nil {
		t.Fatal(err)
	}
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective:  effective.Options{NoTenant: effective.NoTenantDeny, Upstream: up.URL, RedisURL: redisURL, RedisUsers: true},
		RedisUsers: &controllers.RedisUsersOptions{Admin: admin},
		Inject:     &inject.Operator{Namespace: "claude-guard-system", Config: injectConfig},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop() }()
	sidecarBin := filepath.Join(dir, "sidecar")
	if out, err := exec.Command("go", "build", "-o", sidecarBin, filepath.Join(testenv.RepoRoot(), "cmd", "sidecar")).CombinedOutput(); err != nil {
		t.Fatalf("failed to build the sidecar: %v\n%s", err, out)
	}

	h.run(tenant, "apply", "-f", "-")
	h.run(sample(t, is), "apply", "-f", "-")
	h.run("", "wait", "--for=condition=Ready", "cap/assistant-tiers", "-n", "team-a", "--timeout=30s")
	// A kubelet would fill the optional volume in once the Secret exists; podrun needs it at start.
	h.run("", "wait", "--for=create", "secret/"+wellknown.RedisSecretName, "-n", "team-a", "--timeout=30s")
	rendered, err := policyconfig.Parse([]byte(h.run("", "get", "configmap", wellknown.ConfigMapName("assistant-tiers"), "-n", "team-a",
		"-o", `jsonpath={.data.config\.json}`)))
	if err != nil {
		t.Fatal(err)
	}
	if l := rendered.Limits; l.RedisUser != "cg-team-a" || l.RedisURL != redisURL {
		t.Fatalf("rendered limits = %+v, want user cg-team-a and URL %s (no credentials)", l, redisURL)
	}

	// Two replicas of the assistant. Their sidecars listen on the same fixed port, so podrun runs them
	// one after the other; what one admitted, the other sees through Redis.
	var logs bytes.Buffer
	runner := &podrun.Runner{Client: env.Client, Root: t.TempDir(), Output: &logs,
		Binaries: map[string]string{inject.DefaultConfig().Command[0]: sidecarBin}}
	start := func(name string) (*podrun.Process, anthropic.Client) {
		h.run(pod(name), "apply", "-f", "-")
		var p corev1.Pod
		if err := json.Unmarshal([]byte(h.run("", "get", "pod", name, "-n", "team-a", "-o", "json")), &p); err != nil {
			t.Fatal(err)
		}
		if p.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected {
			t.Fatalf("pod %s was not injected: %v", name, p.Annotations)
		}
		proc, err := runner.Start(context.Background(), &p, wellknown.SidecarContainerName)
		if err != nil {
			t.Fatalf("%v\n%s", err, logs.String())
		}
		envs := map[string]string{}
		for _, e := range p.Spec.Containers[0].Env {
			envs[e.Name] = e.Value
		}
		return proc, anthropic.NewClient(option.WithBaseURL(envs[wellknown.EnvBaseURL]), option.WithMaxRetries(0))
	}

	type call struct {
		name      string
		scopes    []string
		model     string
		maxTokens int64
		status    int
		want      string // in the error message
	}
	token := func(sub string, scopes ...string) string { return is.Sign(is.Claims(sub, audience, scopes...)) }
	do := func(t *testing.T, client anthropic.Client, tok string, c call) (int, http.Header) {
		t.Helper()
		var resp *http.Response
		_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
			Model: c.model, MaxTokens: c.maxTokens,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))},
		}, option.WithAuthToken(tok), option.WithResponseInto(&resp),
			// An explicit timeout lets the SDK send a large non-streaming max_tokens (the fake answers at once).
			option.WithRequestTimeout(time.Minute))
		var apiErr *anthropic.Error
		switch {
		case err == nil:
			return http.StatusOK, resp.Header
		case errors.As(err, &apiErr):
			if c.want != "" && !strings.Contains(apiErr.Error(), c.want) {
				t.Errorf("%s: got %v, want a message containing %q", c.name, err, c.want)
			}
			return apiErr.StatusCode, apiErr.Response.Header
		default:
			t.Fatalf("%s: %v", c.name, err)
		}
		return 0, nil
	}

	first, client := start("assistant-1")
	tiers := []call{
		{"basic calls Haiku", []string{"basic"}, "claude-haiku-4-5", 4096, 200, ""},
		{"basic over its 4K ceiling", []string{"basic"}, "claude-haiku-4-5", 4097, 400, "exceeds the 4096 allowed"},
		{"basic asks for Sonnet", []string{"basic"}, "claude-sonnet-4-5", 100, 403, `requires scope \"pro\"`},
		// Pro's ceiling is 200K; Sonnet 4.5 itself stops at 64K (the fake upstream refuses more, as the API does).
		{"pro calls Sonnet with 64K", []string{"pro"}, "claude-sonnet-4-5", 64000, 200, ""},
		{"pro asks for Opus", []string{"pro"}, "claude-opus-4-1", 100, 403, `requires scope \"admin\"`},
		{"admin calls Opus", []string{"admin"}, "claude-opus-4-1", 1000, 200, ""},
		// The platform's ceiling is named, not its value (that stays in the policy's status).
		{"admin within the tenant's ceiling only", []string{"admin"}, "claude-opus-4-1", 200001, 400, `exceeds the platform's ceiling for model \"claude-opus-4-1\"`},
	}
	for _, c := range tiers {
		if got, _ := do(t, client, token("user-"+c.name, c.scopes...), c); got != c.status {
			t.Errorf("%s: status %d, want %d", c.name, got, c.status)
		}
	}
	if _, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}, option.WithAPIKey(wellknown.PlaceholderAPIKey)); err == nil {
		t.Error("a call without a user token was served (the sample is Strict)")
	}

	// alice's daily token counter and one of her tokens, used on the first replica.
	replayed := token("alice", "basic")
	status, hdr := do(t, client, replayed, call{name: "alice on replica 1", model: "claude-haiku-4-5", maxTokens: 1000})
	if status != 200 {
		t.Fatalf("alice on replica 1: %d", status)
	}
	before := remaining(t, hdr)
	// The sidecar is connected as its namespace's user, and only as it.
	clients, err := redis.Client(t).ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(clients, "user=cg-team-a") {
		t.Errorf("no Redis connection of user cg-team-a:\n%s", clients)
	}
	if err := first.Stop(); err != nil {
		t.Logf("sidecar 1 exit: %v", err)
	}

	_, client2 := start("assistant-2")
	if got, _ := do(t, client2, replayed, call{name: "replay on replica 2", model: "claude-haiku-4-5", maxTokens: 10, want: "already used"}); got != 401 {
		t.Errorf("a token used on replica 1 was accepted on replica 2: %d", got)
	}
	status, hdr = do(t, client2, token("alice", "basic"), call{name: "alice on replica 2", model: "claude-haiku-4-5", maxTokens: 1000})
	if status != 200 {
		t.Fatalf("alice on replica 2: %d", status)
	}
	if after := remaining(t, hdr); after >= before {
		t.Errorf("alice's daily tokens remaining went from %d on replica 1 to %d on replica 2: the counter is not shared", before, after)
	}

	// The upstream saw the tenant's key and never a user token; the logs hold no token or key.
	for _, r := range fake.Requests() {
		if r.Header.Get("x-api-key") != upstreamKey || r.Header.Get("Authorization") != "" {
			t.Errorf("upstream request headers: %v", r.Header)
		}
	}
	out := logs.String()
	if strings.Contains(out, upstreamKey) || strings.Contains(out, replayed) {
		t.Error("the sidecars' output leaks the key or a token")
	}
	if !strings.Contains(out, `"endUser":"alice"`) {
		t.Errorf("audit records do not name the end user:\n%s", out)
	}

	testRevocation(t, h, is)
}

func remaining(t *testing.T, h http.Header) int64 {
	t.Helper()
	v := h.Get("x-claude-guard-ratelimit-tokens-remaining")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("x-claude-guard-ratelimit-tokens-remaining = %q", v)
	}
	return n
}
