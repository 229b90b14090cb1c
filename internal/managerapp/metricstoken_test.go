package managerapp

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// TestMetricsTokenHash: an empty Secret is filled with a random token, a filled one is kept (every
// replica and restart renders the same hash), and a missing one is an error that says who creates it.
func TestMetricsTokenHash(t *testing.T) {
	ctx := context.Background()
	empty := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "cg", Name: "empty"}}
	kept := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "cg", Name: "kept"}, Data: map[string][]byte{MetricsTokenKey: []byte("known")}}
	c := fake.NewClientBuilder().WithObjects(empty, kept).Build()

	h1, err := metricsTokenHash(ctx, c, "cg", "empty")
	if err != nil {
		t.Fatal(err)
	}
	got := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(empty), got); err != nil {
		t.Fatal(err)
	}
	if tok := string(got.Data[MetricsTokenKey]); len(tok) != 64 || policyconfig.MetricsTokenHash(tok) != h1 {
		t.Fatalf("filled token %q, hash %s", tok, h1)
	}
	if h2, err := metricsTokenHash(ctx, c, "cg", "empty"); err != nil || h2 != h1 {
		t.Fatalf("second call: %s, %v; want the same hash %s", h2, err, h1)
	}
	if h, err := metricsTokenHash(ctx, c, "cg", "kept"); err != nil || h != policyconfig.MetricsTokenHash("known") {
		t.Fatalf("an existing token was not kept: %s, %v", h, err)
	}
	if _, err := metricsTokenHash(ctx, c, "cg", "missing"); err == nil || !strings.Contains(err.Error(), "the chart creates it") {
		t.Fatalf("missing Secret: %v", err)
	}
}
