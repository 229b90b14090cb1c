package controllers

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/conditions"
	"github.com/claude-guard/claude-guard/internal/pricing"
)

// PriceTableReconciler reports what the cluster's ClaudePriceTable prices. The policies render it
// through their own watch (policy_setup.go); nothing here writes to them.
type PriceTableReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=claudeguard.io,resources=claudepricetables,verbs=get;list;watch
// +kubebuilder:rbac:groups=claudeguard.io,resources=claudepricetables/status,verbs=get;update;patch

// Reconcile updates the table's status.
func (r *PriceTableReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	t := &v1alpha1.ClaudePriceTable{}
	if err := r.Get(ctx, req.NamespacedName, t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !t.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := t.DeepCopy()
	setPriceTableStatus(t)
	return ctrl.Result{}, r.patchStatus(ctx, orig, t)
}

// setPriceTableStatus records how many prices are in force, and which entries can never price a model
// because an earlier one covers them (Degraded).
func setPriceTableStatus(t *v1alpha1.ClaudePriceTable) {
	t.Status.ObservedGeneration = t.Generation
	t.Status.Entries = int32(len(pricing.Resolve(t)))
	t.Status.BuiltinAsOf = ""
	from := fmt.Sprintf("%d from this table", len(t.Spec.Prices))
	if t.Spec.Builtin != v1alpha1.BuiltinExclude {
		t.Status.BuiltinAsOf = pricing.BuiltinAsOf()
		from += fmt.Sprintf(", then %d built in (as of %s)", len(pricing.Builtin()), t.Status.BuiltinAsOf)
	}
	conditions.Set(t, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonPricesInForce,
		Message: fmt.Sprintf("%d prices in force (%s); rendered into every policy with a USD budget", t.Status.Entries, from)})
	shadowed := pricing.Shadowed(t.Spec.Prices)
	if len(shadowed) == 0 {
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionDegraded)
		return
	}
	parts := make([]string, len(shadowed))
	for i, s := range shadowed {
		parts[i] = fmt.Sprintf("spec.prices[%d] %q is covered by spec.prices[%d] %q", s[0], t.Spec.Prices[s[0]].Model, s[1], t.Spec.Prices[s[1]].Model)
	}
	conditions.Set(t, metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonRuleHasNoEffect,
		Message: "The first entry whose glob matches a model prices it, so these never price anything: " + strings.Join(parts, "; ")})
}

func (r *PriceTableReconciler) patchStatus(ctx context.Context, orig, t *v1alpha1.ClaudePriceTable) error {
	_, err := patchStatus(ctx, r.Client, r.Recorder, orig, t, !equality.Semantic.DeepEqual(orig.Status, t.Status))
	return err
}

// SetupWithManager registers the price table reconciler.
func (r *PriceTableReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("claudepricetable").
		For(&v1alpha1.ClaudePriceTable{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}
