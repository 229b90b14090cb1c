package managerapp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// MetricsTokenKey is the key of the metrics token Secret that holds the token.
const MetricsTokenKey = "token"

// metricsTokenHash returns the SHA-256 of the operator's metrics token, which every rendered config
// carries so that sidecars serve /metrics only to its bearer (Prometheus, given the Secret). The chart
// creates the Secret empty, as it does the webhook's; the first manager to start fills it, and the
// others (an update conflict) read what it wrote. The token itself never leaves the release namespace.
func metricsTokenHash(ctx context.Context, c client.Client, namespace, name string) (string, error) {
	for range 3 {
		s := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
			return "", fmt.Errorf("failed to read the metrics token Secret %s/%s (the chart creates it): %w", namespace, name, err)
		}
		if tok := string(s.Data[MetricsTokenKey]); tok != "" {
			return policyconfig.MetricsTokenHash(tok), nil
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[MetricsTokenKey] = []byte(hex.EncodeToString(b))
		err := c.Update(ctx, s)
		if err == nil {
			return policyconfig.MetricsTokenHash(string(s.Data[MetricsTokenKey])), nil
		}
		if !apierrors.IsConflict(err) {
			return "", fmt.Errorf("failed to write the metrics token into Secret %s/%s: %w", namespace, name, err)
		}
	}
	return "", fmt.Errorf("failed to write the metrics token into Secret %s/%s: conflicting updates", namespace, name)
}
