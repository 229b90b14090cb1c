package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
)

// indexStatusTenant indexes policies by the tenant that last narrowed them, so a tenant change finds
// the policies it used to govern even after its selector stopped matching their namespace.
const indexStatusTenant = "status.tenant"

// SetupWithManager registers the policy reconciler and its watches.
//
// Status-only changes never re-trigger work: the policy itself is watched for generation changes and
// deletion only, and every secondary watch maps to the policies it can affect.
func (r *PolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.ClaudeAccessPolicy{}, indexStatusTenant,
		func(o client.Object) []string {
			if t := o.(*v1alpha1.ClaudeAccessPolicy).Status.Tenant; t != "" {
				return []string{t}
			}
			return nil
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("claudeaccesspolicy").
		For(&v1alpha1.ClaudeAccessPolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deleting{}))).
		Owns(&corev1.ConfigMap{}).
		// A sibling's selector change can create or end a conflict.
		Watches(&v1alpha1.ClaudeAccessPolicy{}, handler.EnqueueRequestsFromMapFunc(r.siblings),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.ClaudeTenant{}, handler.EnqueueRequestsFromMapFunc(r.policiesOfTenant),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Prices are rendered into every config with a USD budget, and refuse one with an unpriced model.
		Watches(&v1alpha1.ClaudePriceTable{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deleting{}))).
		// Revocations are rendered into the configs of their namespace (render.revoked).
		Watches(&v1alpha1.ClaudeRevocation{}, handler.EnqueueRequestsFromMapFunc(r.policiesInPodNamespace),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deleting{}))).
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.policiesInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesMetadata(&corev1.Pod{}, delayedMap{fn: r.policiesInPodNamespace, delay: PodCountDelay},
			builder.WithPredicates(podMetadataChanged{})).
		// The kubelet cannot mount a sidecar volume of a pod (mountfailures.go).
		Watches(&corev1.Event{}, delayedMap{fn: r.policiesInPodNamespace, delay: PodCountDelay},
			builder.WithPredicates(sidecarMountFailed{})).
		Complete(r)
}

// sidecarMountFailed passes the kubelet's FailedMount events about a sidecar volume of a pod.
type sidecarMountFailed struct{ predicate.Funcs }

func (sidecarMountFailed) Create(e event.CreateEvent) bool { return isSidecarMountFailure(e.Object) }
func (sidecarMountFailed) Update(e event.UpdateEvent) bool { return isSidecarMountFailure(e.ObjectNew) }
func (sidecarMountFailed) Delete(event.DeleteEvent) bool   { return false }

func isSidecarMountFailure(o client.Object) bool {
	e, ok := o.(*corev1.Event)
	return ok && e.Reason == reasonFailedMount && e.InvolvedObject.Kind == "Pod" && failedVolume(e.Message) != ""
}

// deleting passes updates that start a deletion, which do not change the generation of every kind.
type deleting struct{ predicate.Funcs }

func (deleting) Update(e event.UpdateEvent) bool {
	return e.ObjectNew.GetDeletionTimestamp() != nil && e.ObjectOld.GetDeletionTimestamp() == nil
}

// podMetadataChanged passes pod creation and deletion, and updates of labels or annotations (selection
// and injection records): not the status churn of running pods.
type podMetadataChanged struct{ predicate.Funcs }

func (podMetadataChanged) Update(e event.UpdateEvent) bool {
	return !labels.Equals(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
		!labels.Equals(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()) ||
		(e.ObjectNew.GetDeletionTimestamp() != nil) != (e.ObjectOld.GetDeletionTimestamp() != nil)
}

func (r *PolicyReconciler) listRequests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list v1alpha1.ClaudeAccessPolicyList
	if err := r.List(ctx, &list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list policies for a watch event")
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
	}
	return out
}

// allPolicies maps a price table event to every policy: price edits are rare, and a reconcile that
// renders the same config writes nothing.
func (r *PolicyReconciler) allPolicies(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.listRequests(ctx)
}

func (r *PolicyReconciler) siblings(ctx context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, req := range r.listRequests(ctx, client.InNamespace(o.GetNamespace())) {
		if req.Name != o.GetName() {
			out = append(out, req)
		}
	}
	return out
}

func (r *PolicyReconciler) policiesInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRequests(ctx, client.InNamespace(o.GetName()))
}

func (r *PolicyReconciler) policiesInPodNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRequests(ctx, client.InNamespace(o.GetNamespace()))
}

// policiesOfTenant maps a tenant event to the policies in the namespaces it selects now, and to those it
// governed before (found through the status.tenant index), so both gaining and losing a namespace are
// seen.
func (r *PolicyReconciler) policiesOfTenant(ctx context.Context, o client.Object) []reconcile.Request {
	t := o.(*v1alpha1.ClaudeTenant)
	seen := map[reconcile.Request]bool{}
	var out []reconcile.Request
	add := func(reqs []reconcile.Request) {
		for _, req := range reqs {
			if !seen[req] {
				seen[req] = true
				out = append(out, req)
			}
		}
	}
	add(r.listRequests(ctx, client.MatchingFields{indexStatusTenant: t.Name}))
	sel, err := metav1.LabelSelectorAsSelector(&t.Spec.NamespaceSelector)
	if err != nil {
		return out
	}
	namespaces, err := namespacesMatching(ctx, r.Client, sel)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list namespaces for a tenant event", "tenant", t.Name)
		return out
	}
	for _, ns := range namespaces {
		add(r.listRequests(ctx, client.InNamespace(ns.Name)))
	}
	return out
}
