//go:build integration

package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/claude-guard/claude-guard/internal/test/wait"
)

const spendSetup = `apiVersion: v1
kind: Namespace
metadata:
  name: spend
  labels: {claudeguard.io/tenant: spend}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeTenant
metadata: {name: spend}
spec:
  namespaceSelector: {matchLabels: {claudeguard.io/tenant: spend}}
  models: {allow: ["claude-haiku-*", "claude-lab-*"]}
  credentials: {allowedSources: [SecretRef]}
---
apiVersion: v1
kind: Secret
metadata: {name: anthropic, namespace: spend}
stringData: {api-key: ` + upstreamKey + `}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: meter, namespace: spend}
---
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata: {name: meter, namespace: spend}
spec:
  podSelector: {matchLabels: {app: meter}}
  credentials: {secretRef: {name: anthropic, key: api-key}}
  models: {allow: ["claude-haiku-4-5", "claude-lab-*"]}
  budgets:
  - {name: daily, key: Namespace, window: Day, usd: "0.05"}
`

// The lab's models cost $100,000 per million tokens ($0.10 a token), so one call of the fake upstream
// spends more than the policy's $0.05.
const labPrices = `apiVersion: claudeguard.io/v1alpha1
kind: ClaudePriceTable
metadata: {name: default}
spec:
  prices:
  - {model: "claude-lab-*", input: "100000", output: "100000"}
`

const meterPod = `apiVersion: v1
kind: Pod
metadata: {name: meter, namespace: spend, labels: {app: meter}}
spec:
  serviceAccountName: meter
  containers: [{name: app, image: example.com/meter:1.0}]
`

// TestUSDBudgetSpendsAndRefuses: the platform team's prices, applied with kubectl, are what a USD budget
// counts. A policy allowing a model no price covers is not admitted and its status names the glob; once
// the ClaudePriceTable prices it, the policy is admitted, and its injected sidecar lets calls through
// until the day's spend passes the budget, then answers 429.
func TestUSDBudgetSpendsAndRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	mustKubectl(t, "apply", "-f", write("setup.yaml", spendSetup))
	ready := func(want, reason string) {
		t.Helper()
		wait.For(t, 15*time.Second, "", func() error {
			out, _ := kubectl("get", "cap", "meter", "-n", "spend", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}`)
			if out != want+"/"+reason {
				return errors.New("policy Ready is " + out)
			}
			return nil
		})
	}
	// The built-in prices know claude-haiku-4-5, not the lab's models.
	ready("False", "UnpricedModel")
	msg := mustKubectl(t, "get", "cap", "meter", "-n", "spend", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].message}`)
	if !strings.Contains(msg, `spec.models.allow[1] "claude-lab-*" has no price`) || strings.Contains(msg, "claude-haiku-4-5") {
		t.Fatalf("Ready message does not name the one unpriced glob: %s", msg)
	}

	mustKubectl(t, "apply", "-f", write("prices.yaml", labPrices))
	t.Cleanup(func() { _, _ = kubectl("delete", "claudepricetable", "default", "--wait=false") })
	ready("True", "Admitted")
	wait.For(t, 15*time.Second, "", func() error {
		out, _ := kubectl("get", "cprice", "default", "--no-headers")
		if f := strings.Fields(out); len(f) < 3 || f[1] != "True" || f[2] != "Include" {
			return errors.New("kubectl get cprice: " + out)
		}
		return nil
	})

	mustKubectl(t, "apply", "-f", write("pod.yaml", meterPod))
	_, client, logs := startInjected(t, "spend", "meter")
	call := func() error {
		_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
			Model: "claude-lab-1", MaxTokens: 64,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count this"))},
		})
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("first call, below the budget: %v\n%s", err, logs.String())
	}
	err := call()
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || !strings.Contains(err.Error(), "policy/budget-daily") {
		t.Fatalf("second call, the day's $0.05 spent: want a 429 naming policy/budget-daily, got %v\n%s", err, logs.String())
	}
	if ra := apiErr.Response.Header.Get("retry-after"); ra == "" {
		t.Errorf("429 without retry-after")
	}
}
