package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
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

// applyConfigMap writes the rendered config with server-side apply, unless the cached copy already holds
// exactly this content, so a steady-state reconcile makes no write.
func applyConfigMap(ctx context.Context, c client.Client, p *v1alpha1.ClaudeAccessPolicy, r renderedConfigMap) error {
	var existing corev1.ConfigMap
	err := c.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: r.name}, &existing)
	switch {
	case err == nil && existing.Annotations[wellknown.AnnotationConfigHash] == r.hash &&
		existing.Data[wellknown.ConfigKey] == string(r.data) && ownedBy(&existing, p):
		return nil
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("failed to get ConfigMap %s/%s: %w", p.Namespace, r.name, err)
	}
	cm := corev1ac.ConfigMap(r.name, p.Namespace).
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
	if err := c.Apply(ctx, cm, FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to apply ConfigMap %s/%s: %w", p.Namespace, r.name, err)
	}
	return nil
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
