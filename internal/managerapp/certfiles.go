package managerapp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
)

// certFiles writes the webhook Secret's certificate files into the webhook's cert directory (an
// emptyDir) as soon as the API server has them, and again whenever they change.
//
// Why not mount the Secret: the kubelet refreshes a Secret volume on its periodic pod sync, up to a
// minute or more after the Secret changes. A new release's manager (whose Secret the rotator fills only
// after the pod started) then waited that long, and the rotator's exponential back-off longer (112 s
// measured), before it served the webhook; meanwhile pods were admitted without it. Read from the API
// server, the files are there within a second of the rotator writing them.
type certFiles struct {
	client kubernetes.Interface
	secret types.NamespacedName
	dir    string
}

// files are the Secret keys the webhook server and the rotator read.
var certFileKeys = []string{"ca.crt", "tls.crt", "tls.key"}

// NeedLeaderElection is false: every replica serves the webhook.
func (c *certFiles) NeedLeaderElection() bool { return false }

// Start watches the one Secret (a field selector on its name: the chart's RBAC allows no other) until
// ctx ends.
func (c *certFiles) Start(ctx context.Context) error {
	lw := cache.NewListWatchFromClient(c.client.CoreV1().RESTClient(), "secrets", c.secret.Namespace,
		fields.OneTermEqualSelector("metadata.name", c.secret.Name))
	write := func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		if err := c.write(s); err != nil {
			ctrl.Log.Error(err, "Failed to write the webhook certificate files", "secret", c.secret.String(), "dir", c.dir)
		}
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.Secret{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    write,
			UpdateFunc: func(_, obj any) { write(obj) },
		},
	})
	informer.RunWithContext(ctx)
	return nil
}

// write replaces each file whose content differs from the Secret's, atomically (a new file renamed
// over the old one), so the webhook server never reads half a certificate. A Secret not filled yet
// writes nothing.
func (c *certFiles) write(s *corev1.Secret) error {
	if len(s.Data["tls.crt"]) == 0 || len(s.Data["tls.key"]) == 0 {
		return nil
	}
	// Between the two renames the pair does not match: the certificate watcher then keeps serving the
	// old pair until the second file follows.
	for _, k := range certFileKeys {
		path := filepath.Join(c.dir, k)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, s.Data[k]) {
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, s.Data[k], 0o600); err != nil {
			return fmt.Errorf("failed to write %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("failed to replace %s: %w", path, err)
		}
	}
	return nil
}
