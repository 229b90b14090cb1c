package redisacl

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// MasterSecretName is the Secret in the operator's namespace that holds the generated master secret
// when no --redis-acl-secret-file is given; MasterSecretKey is its key.
const (
	MasterSecretName = "claude-guard-redis-acl"
	MasterSecretKey  = "master"
)

// LoadMaster returns the master secret the passwords are derived from. With file set it is the file's
// content (a Secret the platform team manages, mounted into the manager). Otherwise it is the Secret
// MasterSecretName in namespace, created with 32 random bytes by the first replica that finds none:
// creation is atomic in the API server, so replicas racing at first start all end up with the one that
// won, and restarts read it back. Losing that Secret only changes every password: the controller then
// rewrites every namespace's Secret and user on its next pass.
//
// r must read from the API server directly (the manager's cache is not running yet), and the manager
// must be allowed to get and create Secrets in namespace.
func LoadMaster(ctx context.Context, file string, r client.Reader, w client.Writer, namespace string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("failed to read --redis-acl-secret-file: %w", err)
		}
		b = bytes.TrimSpace(b)
		if len(b) < minMasterLen {
			return nil, fmt.Errorf("--redis-acl-secret-file must hold at least %d bytes, got %d", minMasterLen, len(b))
		}
		return b, nil
	}
	key := client.ObjectKey{Namespace: namespace, Name: MasterSecretName}
	for range 2 {
		var s corev1.Secret
		err := r.Get(ctx, key, &s)
		if err == nil {
			if b := s.Data[MasterSecretKey]; len(b) >= minMasterLen {
				return b, nil
			}
			return nil, fmt.Errorf("secret %s has no key %s of at least %d bytes", key, MasterSecretKey, minMasterLen)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("failed to get secret %s: %w", key, err)
		}
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("failed to generate the Redis ACL master secret: %w", err)
		}
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: MasterSecretName,
				Labels: map[string]string{"app.kubernetes.io/managed-by": wellknown.ManagedBy}},
			Data: map[string][]byte{MasterSecretKey: []byte(hex.EncodeToString(raw))},
		}
		err = w.Create(ctx, &s)
		if err == nil {
			return s.Data[MasterSecretKey], nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("failed to create secret %s: %w", key, err)
		}
		// Another replica created it first: read theirs.
	}
	return nil, fmt.Errorf("secret %s was created and removed concurrently; restart to retry", key)
}
