package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// FieldOwner is the server-side apply field manager of everything the operator writes.
const FieldOwner = client.FieldOwner("claude-guard")

// renderedConfigMap is the ConfigMap that carries a policy's rendered config.
type renderedConfigMap struct {
	name, hash string
	data       []byte
}

// configWriter writes rendered configs. live reads what the cache cannot show: the manager caches
// only the ConfigMaps it labelled, and one planted under a policy's name may carry no label.
type configWriter struct {
	client.Client
	live client.Reader
}

// apply writes the rendered config with server-side apply, unless the cached copy already holds
// exactly this content, so a steady-state reconcile makes no write. A ConfigMap of that name that is
// not the controller's for p (no controller reference to p, or immutable, which no apply can change) is
// deleted first and written anew; replaced says why it was not the controller's ("" when nothing was).
func (w configWriter) apply(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy, r renderedConfigMap) (replaced string, err error) {
	existing, err := w.existing(ctx, p.Namespace, r.name)
	if err != nil {
		return "", err
	}
	if existing != nil {
		replaced = foreign(existing, p)
		if replaced == "" && existing.Annotations[wellknown.AnnotationConfigHash] == r.hash && existing.Data[wellknown.ConfigKey] == string(r.data) {
			return "", nil
		}
	}
	if replaced != "" {
		// The UID precondition deletes exactly the object judged, never one written since.
		if err := w.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("failed to delete ConfigMap %s/%s, which claude-guard did not write (%s): %w", p.Namespace, r.name, replaced, err)
		}
	}
	if err := w.Apply(ctx, configMapFor(p, r), FieldOwner, client.ForceOwnership); err != nil {
		return "", fmt.Errorf("failed to apply ConfigMap %s/%s: %w", p.Namespace, r.name, err)
	}
	return replaced, nil
}

// existing returns the ConfigMap called name: from the cache, else from the API server; nil when there
// is none.
func (w configWriter) existing(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	cm := &corev1.ConfigMap{}
	err := w.Get(ctx, key, cm)
	if apierrors.IsNotFound(err) && w.live != nil {
		err = w.live.Get(ctx, key, cm)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("failed to get ConfigMap %s/%s: %w", namespace, name, err)
	}
	return cm, nil
}

// foreign says why cm is not the controller's rendered config of p, or "".
func foreign(cm *corev1.ConfigMap, p *v1alpha1.ClaudeAccessPolicy) string {
	switch {
	case !ownedBy(cm, p):
		return "it has no controller reference to this policy (created by someone else, or before the policy)"
	case ptr.Deref(cm.Immutable, false):
		return "it is immutable"
	}
	return ""
}

func configMapFor(p *v1alpha1.ClaudeAccessPolicy, r renderedConfigMap) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(r.name, p.Namespace).
		WithLabels(map[string]string{
			"app.kubernetes.io/managed-by": wellknown.ManagedBy,
			wellknown.LabelPolicy:          p.Name,
		}).
		WithAnnotations(map[string]string{
			wellknown.AnnotationConfigHash: r.hash,
			wellknown.AnnotationPolicy:     p.Name,
		}).
		WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion(v1alpha1.GroupVersion.String()).
			WithKind("ClaudeAccessPolicy").
			WithName(p.Name).
			WithUID(p.UID).
			WithController(true).
			WithBlockOwnerDeletion(true)).
		WithData(map[string]string{wellknown.ConfigKey: string(r.data)})
}

func ownedBy(cm *corev1.ConfigMap, p *v1alpha1.ClaudeAccessPolicy) bool {
	for _, o := range cm.OwnerReferences {
		if o.UID == p.UID && o.Controller != nil && *o.Controller {
			return true
		}
	}
	return false
}

// deleteConfigMap removes a policy's rendered config. Owner references would let the garbage collector
// do it too, but deleting explicitly makes cleanup immediate and does not depend on a running GC.
func deleteConfigMap(ctx context.Context, c client.Client, p *v1alpha1.ClaudeAccessPolicy) error {
	cm := &corev1.ConfigMap{}
	cm.Namespace, cm.Name = p.Namespace, wellknown.ConfigMapName(p.Name)
	if err := c.Delete(ctx, cm); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return nil
}
