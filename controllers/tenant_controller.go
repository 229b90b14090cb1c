package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/conditions"
)

// TenantReconciler reports, for each ClaudeTenant, which namespaces it governs and whether another tenant
// claims any of them. Policies react to tenants through their own watch; nothing here writes to them.
type TenantReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// SharedBackend is set when the operator has a Redis, where tenants' limits and budgets count.
	SharedBackend bool
}

// +kubebuilder:rbac:groups=claudeguard.io,resources=claudetenants,verbs=get;list;watch
// +kubebuilder:rbac:groups=claudeguard.io,resources=claudetenants/status,verbs=get;update;patch

// Reconcile updates one tenant's status.
func (r *TenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	t := &v1alpha1.ClaudeTenant{}
	if err := r.Get(ctx, req.NamespacedName, t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !t.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := t.DeepCopy()
	err := r.reconcileNormal(ctx, t)
	if err == nil {
		t.Status.ObservedGeneration = t.Generation
	}
	return ctrl.Result{}, errors.Join(err, r.patchStatus(ctx, orig, t))
}

func (r *TenantReconciler) reconcileNormal(ctx context.Context, t *v1alpha1.ClaudeTenant) error {
	sel, err := metav1.LabelSelectorAsSelector(&t.Spec.NamespaceSelector)
	if err != nil {
		conditions.Set(t, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: v1alpha1.ReasonInvalidSelector, Message: fmt.Sprintf("spec.namespaceSelector is invalid: %v", err)})
		return nil
	}
	namespaces, err := namespacesMatching(ctx, r.Client, sel)
	if err != nil {
		return err
	}
	var others v1alpha1.ClaudeTenantList
	if err := r.List(ctx, &others); err != nil {
		return fmt.Errorf("failed to list ClaudeTenants: %w", err)
	}
	conflicts := map[string][]string{} // namespace -> other tenants
	var policies int32
	for _, ns := range namespaces {
		for _, o := range others.Items {
			if o.Name == t.Name || o.DeletionTimestamp != nil {
				continue
			}
			if osel, err := metav1.LabelSelectorAsSelector(&o.Spec.NamespaceSelector); err == nil && osel.Matches(labels.Set(ns.Labels)) {
				conflicts[ns.Name] = append(conflicts[ns.Name], o.Name)
			}
		}
		var ps v1alpha1.ClaudeAccessPolicyList
		if err := r.List(ctx, &ps, client.InNamespace(ns.Name)); err != nil {
			return fmt.Errorf("failed to list policies in %s: %w", ns.Name, err)
		}
		policies += int32(len(ps.Items))
	}
	t.Status.Namespaces = int32(len(namespaces))
	t.Status.Policies = policies
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTenantReady,
		Message: fmt.Sprintf("Selects %d namespace(s) with %d ClaudeAccessPolicy object(s)", len(namespaces), policies)}
	if len(conflicts) > 0 {
		names := make([]string, 0, len(conflicts))
		for ns := range conflicts {
			names = append(names, ns)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, ns := range names {
			parts[i] = fmt.Sprintf("%s (also selected by %s)", ns, strings.Join(conflicts[ns], ", "))
		}
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonNamespaceConflict
		cond.Message = "Namespaces selected by more than one ClaudeTenant belong to none and their policies deny every request: " + strings.Join(parts, "; ")
	} else if !r.SharedBackend && (len(t.Spec.Limits) > 0 || len(t.Spec.Budgets) > 0) {
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonNoSharedBackend
		cond.Message = "spec.limits and spec.budgets count in the operator's shared Redis, and the operator has none (chart value redis.url): counted in each pod, they would bound nothing, so the tenant's policies are not admitted; configure Redis, or remove them"
	}
	conditions.Set(t, cond)
	return nil
}

// namespacesMatching lists the namespaces sel selects, as metadata only (the manager watches
// namespaces that way).
func namespacesMatching(ctx context.Context, c client.Reader, sel labels.Selector) ([]metav1.PartialObjectMetadata, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := c.List(ctx, list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("failed to list namespaces: %w", err)
	}
	return list.Items, nil
}

func (r *TenantReconciler) patchStatus(ctx context.Context, orig, t *v1alpha1.ClaudeTenant) error {
	_, err := patchStatus(ctx, r.Client, r.Recorder, orig, t, !equality.Semantic.DeepEqual(orig.Status, t.Status))
	return err
}

// SetupWithManager registers the tenant reconciler. Any namespace label change or policy creation or
// deletion can change any tenant's counts or conflicts, and tenants are few, so those events enqueue
// every tenant.
func (r *TenantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("claudetenant").
		For(&v1alpha1.ClaudeTenant{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Another tenant's selector change can create or end a conflict with this one.
		Watches(&v1alpha1.ClaudeTenant{}, handler.EnqueueRequestsFromMapFunc(r.allTenants),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.allTenants),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&v1alpha1.ClaudeAccessPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allTenants),
			builder.WithPredicates(createOrDelete{})).
		Complete(r)
}

// createOrDelete passes only creations and deletions.
type createOrDelete struct{ predicate.Funcs }

func (createOrDelete) Update(_ event.UpdateEvent) bool { return false }

func (r *TenantReconciler) allTenants(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.ClaudeTenantList
	if err := r.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list tenants for a watch event")
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i, t := range list.Items {
		out[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: t.Name}}
	}
	return out
}
