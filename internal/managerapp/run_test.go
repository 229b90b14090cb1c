//go:build integration

package managerapp

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/internal/test/ports"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// TestRunWaitsForTheWebhookCertificate runs the manager exactly as cmd/manager does, with certificate
// rotation, against a real API server: it must stay up and unready while the webhook's certificate is not
// in its directory, and become ready (webhook serving) once the manager has written the rotator's Secret
// there.
func TestRunWaitsForTheWebhookCertificate(t *testing.T) {
	env, err := testenv.Start(testenv.WithWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	kubeconfig, err := env.KubeconfigFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	ctx := context.Background()
	o := NewOptions()
	// WithWebhooks registers config/webhook, rendered from the chart: its configuration has the default name.
	o.OperatorNamespace, o.WebhookSecret = "claude-guard-system", "webhook-certs"
	o.WebhookCertDir, o.WebhookHost, o.WebhookPort = t.TempDir(), "127.0.0.1", ports.MustFree(t)
	o.MetricsAddr, o.ProbeAddr = "0", "127.0.0.1:"+strconv.Itoa(ports.MustFree(t))
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.OperatorNamespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: o.OperatorNamespace, Name: o.WebhookSecret}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: o.OperatorNamespace, Name: o.MetricsTokenSecret}},
	} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, o) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager exited with %v", err)
		}
	}()

	readyz := func() (int, string) {
		resp, err := http.Get("http://" + o.ProbeAddr + "/readyz?verbose")
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Never ready while the webhook's certificate is not in its directory, and ready once it is: the
	// manager writes the rotator's Secret there itself (certFiles), so no kubelet is needed. Sampled from
	// the start, so a readiness that came before the files would be seen.
	certFile := filepath.Join(o.WebhookCertDir, "tls.crt")
	wait.ForTrue(t, time.Minute, "the manager becomes ready", func() bool {
		_, before := os.Stat(certFile)
		code, body := readyz()
		if code == http.StatusOK && before != nil {
			if _, after := os.Stat(certFile); after != nil {
				t.Fatalf("readyz = 200 while %s does not exist: %q", certFile, body)
			}
		}
		select {
		case err := <-done:
			t.Fatalf("manager stopped while waiting for its certificate: %v", err)
		default:
		}
		return code == http.StatusOK
	})
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: o.OperatorNamespace, Name: o.WebhookSecret}, secret); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if b, err := os.ReadFile(filepath.Join(o.WebhookCertDir, name)); err != nil || string(b) != string(secret.Data[name]) {
			t.Errorf("%s in the cert directory is not the Secret's (%v)", name, err)
		}
	}

	// The empty metrics token Secret the chart creates was filled, once.
	tok := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: o.OperatorNamespace, Name: o.MetricsTokenSecret}, tok); err != nil {
		t.Fatal(err)
	}
	if len(tok.Data[MetricsTokenKey]) != 64 {
		t.Errorf("metrics token = %d bytes, want 64 hex characters", len(tok.Data[MetricsTokenKey]))
	}
}
