//go:build integration

// Package explain tests `kubectl claude-guard explain` as a user runs it: the plugin binary found by a
// real kubectl on PATH, against a real API server (envtest) with the controllers and the injection
// webhook, a tenant with a ceiling, a policy, an injected pod, and that pod's sidecar (in-process, on
// the rendered config) having served and refused calls.
package explain

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/app"
	"github.com/claude-guard/claude-guard/sidecar/app/apptest"
)

const upstreamKey = "sk-ant-explain-0000000000000000000000000"

const objects = `
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
  models: {allow: ["claude-haiku-*", "claude-sonnet-*"], maxTokens: 4096}
  credentials: {allowedSources: [SecretRef]}
  limits: [{name: namespace-rpm, key: Namespace, window: Minute, requests: 600}]
---
apiVersion: v1
kind: Secret
metadata: {name: anthropic, namespace: team-a}
stringData: {api-key: ` + upstreamKey + `}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: chat, namespace: team-a}
spec:
  podSelector: {matchLabels: {app: chat}}
  credentials: {secretRef: {name: anthropic, key: api-key}}
  models: {allow: ["claude-haiku-*"]}
  limits:
    backend: Redis
    rules: [{name: per-pod, key: Workload, window: Minute, requests: 50}]
`

const pod = `
apiVersion: v1
kind: Pod
metadata: {name: chat-0, namespace: team-a, labels: {app: chat}}
spec:
  containers: [{name: app, image: example.com/chat:1}]
`

func TestExplainShowsPolicyCeilingsAndDenials(t *testing.T) {
	fake := fakeupstream.New(upstreamKey)
	up := httptest.NewServer(fake)
	defer up.Close()
	redis := testservers.StartRedis(t, testservers.RedisOptions{})
	env, err := testenv.Start(testenv.WithWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	dir := t.TempDir()
	kubectl, err := env.KubectlCLI(dir)
	if err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, err := kubectl.Run(stdin, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective: effective.Options{NoTenant: effective.NoTenantDeny, Upstream: up.URL, RedisURL: "redis://" + redis.Addr + "/0"},
		Inject:    &inject.Operator{Namespace: "claude-guard-system", Config: inject.DefaultConfig()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop() }()
	run(objects, "apply", "-f", "-")
	run("", "wait", "--for=condition=Ready", "cap/chat", "-n", "team-a", "--timeout=30s")
	run(pod, "apply", "-f", "-")

	// The pod's sidecar, as the kubelet would run it: the rendered config and the mounted key.
	cfg := run("", "get", "configmap", wellknown.ConfigMapName("chat"), "-n", "team-a", "-o", `jsonpath={.data.config\.json}`)
	for name, content := range map[string]string{"config.json": cfg, "api-key": upstreamKey} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	proxy, metrics := apptest.Start(t, &app.Options{ConfigPath: filepath.Join(dir, "config.json"), Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		SecretDir: dir, Workload: "team-a/chat-0", ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info", Stdout: &logbuf.Buffer{}})
	c := anthropic.NewClient(option.WithBaseURL("http://"+proxy), option.WithAPIKey(wellknown.PlaceholderAPIKey), option.WithMaxRetries(0))
	ctx := context.Background()
	msg := func(model string, maxTokens int64) anthropic.MessageNewParams {
		return anthropic.MessageNewParams{Model: model, MaxTokens: maxTokens,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	}
	if _, err := c.Messages.New(ctx, msg("claude-haiku-4-5", 64)); err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	for range 2 {
		if _, err := c.Messages.New(ctx, msg("claude-sonnet-4-5", 64)); err == nil {
			t.Fatal("a model the policy does not allow was served")
		}
	}

	plugin := buildPlugin(t, dir)
	explain := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl.Path, append([]string{"claude-guard", "explain"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(plugin)+":"+os.Getenv("PATH"), "KUBECONFIG="+kubectl.Kubeconfig)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl claude-guard explain %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	out := explain("chat-0", "-n", "team-a", "--metrics-url", "http://"+metrics+"/metrics")
	for _, want := range []string{
		"Sidecar:", "injected",
		"Policy:", "chat (generation 1)", "Ready:", "True",
		"Tenant:", "team-a",
		"Models allowed:", "claude-haiku-*",
		"max_tokens:", "* ≤ 4096 (Reject)  (tenant ceiling)",
		"Limit per-pod:", "50 requests per Minute, per Workload",
		"Limit namespace-rpm:", "600 requests per Minute, per Namespace  (tenant ceiling)",
		"Requests since the sidecar started:", "allow 1, deny 2",
		"models.allow", "deny", "2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, upstreamKey) {
		t.Fatalf("explain printed the API key:\n%s", out)
	}

	// Without --metrics-url it asks the API server's pod proxy; with no kubelet behind this control
	// plane that fails, and the report says so while still explaining the policy.
	out = explain("chat-0", "--namespace=team-a", "--timeout=10s")
	if !strings.Contains(out, "the sidecar's metrics could not be read: pods/proxy to team-a/chat-0:9787/metrics") || !strings.Contains(out, "Models allowed:") {
		t.Errorf("explain without reachable metrics:\n%s", out)
	}
	// A pod no policy selects.
	run(strings.ReplaceAll(strings.ReplaceAll(pod, "chat-0", "other"), "app: chat", "app: other"), "apply", "-f", "-")
	if out := explain("other", "-n", "team-a"); !strings.Contains(out, "not injected") {
		t.Errorf("explain of a pod without a sidecar:\n%s", out)
	}
}

// buildPlugin builds cmd/kubectl-claude_guard into dir/bin, where kubectl finds it on PATH.
func buildPlugin(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin", "kubectl-claude_guard")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(testenv.RepoRoot(), "cmd", "kubectl-claude_guard")).CombinedOutput(); err != nil {
		t.Fatalf("failed to build the plugin: %v\n%s", err, out)
	}
	return bin
}
