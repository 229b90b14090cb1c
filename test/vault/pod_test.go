//go:build integration

package vault

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/podrun"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// TestInjectedPodGetsItsKeyFromVault is the whole chain with real components, once per Vault auth method:
// a policy applied to a real API server, a pod injected by the webhook, its stored sidecar container run
// as a process that gets its SVID from a real SPIRE agent (through a stand-in for the SPIFFE CSI driver)
// and, for the kubernetes method, a service-account token from the API server (the kubelet's part); it
// logs in to a real OpenBao, reads team-a's key, and serves the official SDK. The app never sees the key.
func TestInjectedPodGetsItsKeyFromVault(t *testing.T) {
	w := setup(t)
	fake := fakeupstream.New(keyA)
	fake.Record = true
	upstream := httptest.NewServer(fake)
	defer upstream.Close()

	env, err := testenv.Start(testenv.WithWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective: effective.Options{NoTenant: effective.NoTenantDeny, VaultAddress: w.bao.Addr, VaultCACert: string(w.caPEM), Upstream: upstream.URL},
		Inject:    &inject.Operator{Namespace: "claude-guard-system", Config: inject.DefaultConfig()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop() }()
	cs := w.kubernetesAuth(t, env)
	k, ctx := env.Client, context.Background()
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"claudeguard.io/tenant": "team-a"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "chat"}},
		&v1alpha1.ClaudeTenant{
			ObjectMeta: metav1.ObjectMeta{Name: "team-a"},
			Spec: v1alpha1.ClaudeTenantSpec{
				NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"claudeguard.io/tenant": "team-a"}},
				Models:            v1alpha1.TenantModels{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
				Credentials:       v1alpha1.TenantCredentials{Vault: &v1alpha1.TenantVault{PathPrefix: "tenants/team-a", Mount: "secret", Roles: []string{"team-a"}}},
				SPIFFE:            &v1alpha1.TenantSPIFFE{TrustDomain: "prod.example"},
			},
		},
	} {
		if err := k.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	sidecarBin := filepath.Join(t.TempDir(), "sidecar")
	if out, err := exec.Command("go", "build", "-o", sidecarBin, filepath.Join(testenv.RepoRoot(), "cmd", "sidecar")).CombinedOutput(); err != nil {
		t.Fatalf("build sidecar: %v\n%s", err, out)
	}

	for _, m := range []struct {
		method   v1alpha1.VaultAuthMethod
		audience string
	}{{v1alpha1.VaultAuthCert, ""}, {v1alpha1.VaultAuthJWT, "vault"}, {v1alpha1.VaultAuthKubernetes, ""}} {
		t.Run(string(m.method), func(t *testing.T) {
			name := "chat-" + string(m.method)
			policy := &v1alpha1.ClaudeAccessPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name},
				Spec: v1alpha1.ClaudeAccessPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
					Credentials: v1alpha1.CredentialSource{Vault: &v1alpha1.VaultCredentials{AuthMethod: m.method, Audience: m.audience, Role: "team-a", Mount: "secret", Path: "anthropic", Field: "api_key"}},
					Models:      v1alpha1.ModelPolicy{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
				},
			}
			if err := k.Create(ctx, policy); err != nil {
				t.Fatal(err)
			}
			waitReady(t, k, name)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{ServiceAccountName: "chat", Containers: []corev1.Container{{Name: "app", Image: "example.com/chat:1"}}},
			}
			if err := k.Create(ctx, pod); err != nil {
				t.Fatal(err)
			}
			stored := &corev1.Pod{}
			if err := k.Get(ctx, client.ObjectKeyFromObject(pod), stored); err != nil {
				t.Fatal(err)
			}
			runPodAndCall(t, w, cs, k, stored, sidecarBin, fake)
		})
	}
}

// runPodAndCall runs the stored pod's sidecar and makes one SDK call through it, configured only from
// the app container's injected environment; the upstream must receive team-a's key from Vault.
func runPodAndCall(t *testing.T, w *world, cs *kubernetes.Clientset, k client.Client, stored *corev1.Pod, sidecarBin string, fake *fakeupstream.Server) {
	t.Helper()
	ctx := context.Background()
	// A short root: unix socket paths are limited to 108 bytes.
	root, err := os.MkdirTemp("/tmp", "cg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	agentSocket := strings.TrimPrefix(w.spire.SocketAddr, "unix://")
	var logs bytes.Buffer
	runner := &podrun.Runner{
		Client: k, Root: root, Output: &logs,
		Binaries: map[string]string{inject.DefaultConfig().Command[0]: sidecarBin},
		// The SPIFFE CSI driver's part: the agent's Workload API socket appears in the volume.
		CSI: map[string]func(string) error{"csi.spiffe.io": func(dir string) error {
			return os.Symlink(agentSocket, filepath.Join(dir, inject.DefaultConfig().SocketFile))
		}},
		// The kubelet's part for projected service-account tokens.
		Tokens: func(ctx context.Context, ns, sa, audience string, exp int64) (string, error) {
			tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return tr.Status.Token, nil
		},
	}
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	started := time.Now()
	proc, err := runner.Start(runCtx, stored, wellknown.SidecarContainerName)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	defer func() { _ = proc.Stop() }()
	// Start returns once the startup probe (/readyz: SVID checked and key read) passes.
	t.Logf("time to first ready sidecar (process start to SVID + key from Vault): %s", time.Since(started).Round(time.Millisecond))

	appEnv := map[string]string{}
	for _, e := range stored.Spec.Containers[0].Env {
		appEnv[e.Name] = e.Value
	}
	if appEnv[wellknown.EnvAPIKey] == keyA {
		t.Fatal("the app container holds the real key")
	}
	sdk := anthropic.NewClient(option.WithBaseURL(appEnv[wellknown.EnvBaseURL]), option.WithAPIKey(appEnv[wellknown.EnvAPIKey]), option.WithMaxRetries(0))
	before := len(fake.Requests())
	if _, err := sdk.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}); err != nil {
		t.Fatalf("call through the injected sidecar: %v\n%s", err, logs.String())
	}
	_ = proc.Stop()
	reqs := fake.Requests()
	if len(reqs) != before+1 || reqs[len(reqs)-1].Header.Get("x-api-key") != keyA {
		t.Fatalf("upstream did not get team-a's key from Vault (%d new requests)", len(reqs)-before)
	}
	out := logs.String()
	if !strings.Contains(out, `"workload":"spiffe://prod.example/ns/team-a/sa/chat"`) {
		t.Errorf("audit records do not carry the SPIFFE ID:\n%s", out)
	}
	if strings.Contains(out, keyA) {
		t.Errorf("the sidecar's output contains the key")
	}
}

func waitReady(t *testing.T, k client.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p := &v1alpha1.ClaudeAccessPolicy{}
		err := k.Get(context.Background(), client.ObjectKey{Namespace: "team-a", Name: name}, p)
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		if err == nil && c != nil && c.Status == metav1.ConditionTrue {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy not Ready: %v %s", err, fmt.Sprint(c))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
