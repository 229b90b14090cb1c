package render

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
)

// Tenancy is the outcome of asking which ClaudeTenant owns a namespace.
type Tenancy struct {
	// Tenant is the one tenant selecting the namespace, or nil.
	Tenant *v1alpha1.ClaudeTenant
	// Conflicting names every tenant selecting it when there is more than one.
	Conflicting []string
}

// TenantsSelecting lists the tenants whose namespaceSelector matches ns, sorted by name. A tenant with an
// invalid selector selects nothing (its own status says so).
func TenantsSelecting(ctx context.Context, c client.Reader, ns *metav1.PartialObjectMetadata) ([]v1alpha1.ClaudeTenant, error) {
	var list v1alpha1.ClaudeTenantList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("failed to list ClaudeTenants: %w", err)
	}
	var out []v1alpha1.ClaudeTenant
	for _, t := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(&t.Spec.NamespaceSelector)
		if err != nil || t.DeletionTimestamp != nil {
			continue
		}
		if sel.Matches(labels.Set(ns.Labels)) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Of resolves the tenant of namespace name.
func Of(ctx context.Context, c client.Reader, name string) (Tenancy, error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := c.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return Tenancy{}, fmt.Errorf("failed to get namespace %s: %w", name, err)
	}
	ts, err := TenantsSelecting(ctx, c, ns)
	if err != nil {
		return Tenancy{}, err
	}
	switch len(ts) {
	case 0:
		return Tenancy{}, nil
	case 1:
		return Tenancy{Tenant: &ts[0]}, nil
	default:
		names := make([]string, len(ts))
		for i := range ts {
			names[i] = ts[i].Name
		}
		return Tenancy{Conflicting: names}, nil
	}
}
