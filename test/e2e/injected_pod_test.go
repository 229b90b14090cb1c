//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	corev1 "k8s.io/api/core/v1"

	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/test/podrun"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// upstreamKey is the only key the fake upstream accepts; it reaches the sidecar only through a Secret.
const upstreamKey = "sk-ant-e2e-0000000000000000000000000000"

// TestInjectedPodServes takes the pod exactly as the API server stored it after injection, runs its
// sidecar container as a local process (internal/test/podrun: the kubelet's part), and calls Claude through
// it with the official SDK, configured only from the app container's injected environment.
func TestInjectedPodServes(t *testing.T) {
	setupDoc, podDoc := testenv.Storefront(upstreamKey)
	setup, f := filepath.Join(t.TempDir(), "setup.yaml"), filepath.Join(t.TempDir(), "pod.yaml")
	for path, doc := range map[string]string{setup: setupDoc, f: podDoc} {
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The policy must be admitted before the pod exists, as in a real rollout.
	mustKubectl(t, "apply", "-f", setup)
	wait.For(t, 15*time.Second, "", func() error {
		out, err := kubectl("get", "cap", "storefront", "-n", "shop", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || out != "True" {
			return errors.New("policy not Ready: " + out)
		}
		return nil
	})
	mustKubectl(t, "apply", "-f", f)

	proc, client, logs := startInjected(t, "shop", "storefront")
	ctx := context.Background()
	msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{
		Model: "claude-haiku-4-5", MaxTokens: 4000,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello from the storefront"))},
	})
	if err != nil {
		t.Fatalf("allowed call failed: %v\n%s", err, logs.String())
	}
	if msg.Model != "claude-haiku-4-5" || len(msg.Content) == 0 {
		t.Errorf("unexpected message: %+v", msg)
	}
	_, err = client.Messages.New(ctx, anthropic.MessageNewParams{
		Model: "claude-opus-4-1", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))},
	})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || string(apiErr.Type()) != "permission_error" || !strings.Contains(err.Error(), "claude-opus-4-1") {
		t.Fatalf("denied model: want a 403 permission_error naming the model, got %v", err)
	}
	if err := proc.Stop(); err != nil {
		t.Logf("sidecar exit: %v", err)
	}

	// The upstream saw one call, with the key from the Secret and max_tokens clamped to 1024.
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("x-api-key") != upstreamKey || !bytes.Contains(reqs[0].Body, []byte(`"max_tokens":1024`)) {
		t.Errorf("upstream saw %d request(s): %+v", len(reqs), reqs)
	}
	out := logs.String()
	if strings.Contains(out, upstreamKey) || strings.Contains(out, "hello from the storefront") {
		t.Errorf("the sidecar's output leaks the key or the prompt:\n%s", out)
	}
	if !strings.Contains(out, `"decision":"allow"`) || !strings.Contains(out, `"decision":"deny"`) {
		t.Errorf("audit records lack an allow and a deny:\n%s", out)
	}
}

// startInjected reads pod ns/name as the API server stored it after injection, runs its sidecar as a
// local process (podrun: the kubelet's part) and returns it, with an SDK client configured only from the
// app container's injected environment, and the sidecar's output.
func startInjected(t *testing.T, ns, name string) (*podrun.Process, anthropic.Client, *bytes.Buffer) {
	t.Helper()
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(mustKubectl(t, "get", "pod", name, "-n", ns, "-o", "json")), &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected {
		t.Fatalf("pod was not injected: %v", pod.Annotations)
	}
	logs := &bytes.Buffer{}
	runner := &podrun.Runner{
		Client:   env.Client,
		Root:     t.TempDir(),
		Binaries: map[string]string{inject.DefaultConfig().Command[0]: sidecarBin},
		Output:   logs,
	}
	proc, err := runner.Start(context.Background(), &pod, wellknown.SidecarContainerName)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	t.Cleanup(func() { _ = proc.Stop() })
	appEnv := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		appEnv[e.Name] = e.Value
	}
	client := anthropic.NewClient(option.WithBaseURL(appEnv[wellknown.EnvBaseURL]), option.WithAPIKey(appEnv[wellknown.EnvAPIKey]), option.WithMaxRetries(0))
	return proc, client, logs
}
