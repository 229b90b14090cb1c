//go:build integration

package managerapp

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// TestCertRotatorIssuesCertificateAndPatchesCABundle runs the manager's certificate rotation against a
// real API server: it must fill the webhook Secret and put its CA into the webhook configuration, and
// report ready once the Secret's files appear in the cert directory (the kubelet's part, done here).
func TestCertRotatorIssuesCertificateAndPatchesCABundle(t *testing.T) {
	env, err := testenv.Start(testenv.WithWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	k := env.Client
	o := NewOptions()
	// WithWebhooks registers config/webhook, rendered from the chart: its configuration has the default name.
	o.OperatorNamespace, o.WebhookSecret = "claude-guard-system", "webhook-certs"
	o.WebhookCertDir = t.TempDir()
	o.rotatorName = "cert-rotator-" + t.Name() // TestRunWaitsForTheWebhookCertificate registers the default name
	if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.OperatorNamespace}}); err != nil {
		t.Fatal(err)
	}
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: o.OperatorNamespace, Name: o.WebhookSecret}}); err != nil {
		t.Fatal(err)
	}

	scheme, err := controllers.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	if err := addCertRotator(mgr, o, ready); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = mgr.Start(mctx) }()

	secret := &corev1.Secret{}
	wait.ForTrue(t, 30*time.Second, "", func() bool {
		return k.Get(ctx, client.ObjectKey{Namespace: o.OperatorNamespace, Name: o.WebhookSecret}, secret) == nil &&
			len(secret.Data["ca.crt"]) > 0 && len(secret.Data["tls.crt"]) > 0 && len(secret.Data["tls.key"]) > 0
	})
	wait.ForTrue(t, 30*time.Second, "", func() bool {
		wh := &admissionv1.MutatingWebhookConfiguration{}
		if err := k.Get(ctx, client.ObjectKey{Name: o.WebhookConfig}, wh); err != nil {
			return false
		}
		for _, w := range wh.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
				return false
			}
		}
		return len(wh.Webhooks) == 3
	})
	select {
	case <-ready:
		t.Fatal("ready before the certificate reached the cert directory")
	default:
	}
	for _, name := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if err := os.WriteFile(filepath.Join(o.WebhookCertDir, name), secret.Data[name], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("rotator did not report ready after the certificate was mounted")
	}
}
