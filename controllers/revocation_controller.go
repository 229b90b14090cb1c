package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/conditions"
	"github.com/claude-guard/claude-guard/internal/revocation"
)

// RevocationStore is where sidecars with the Redis backend read their namespace's revocations
// (redisacl.Functions.SetRevocations).
type RevocationStore interface {
	SetRevocations(ctx context.Context, namespace string, entries map[string]string) (wrote bool, err error)
}

// DefaultRevocationResync is how often a namespace's revocations are written to Redis again: a Redis
// restarted without persistence has lost them. The configs keep them meanwhile.
const DefaultRevocationResync = time.Minute

// RevocationReconciler shares each namespace's revocations through Redis, for sidecars with the Redis
// backend (they poll it every few seconds), and reports on every ClaudeRevocation which policies it
// applies to. The policy controller renders the same revocations into the configs (render.revoked),
// which reach every sidecar whatever its backend, within the kubelet's ConfigMap refresh.
//
// It works per namespace (requests carry the namespace as Name): the Redis hash is one per namespace,
// and a policy's issuers decide the status of every revocation in it.
type RevocationReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Store is nil without a Redis backend; the configs are then the only way.
	Store  RevocationStore
	Resync time.Duration
}

// +kubebuilder:rbac:groups=claudeguard.io,resources=clauderevocations,verbs=get;list;watch
// +kubebuilder:rbac:groups=claudeguard.io,resources=clauderevocations/status,verbs=get;update;patch

// Reconcile shares one namespace's revocations and updates their status.
func (r *RevocationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := req.Name
	var revs v1alpha1.ClaudeRevocationList
	if err := r.List(ctx, &revs, client.InNamespace(ns)); err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to list the ClaudeRevocations of namespace %s: %w", ns, err)
	}
	var policies v1alpha1.ClaudeAccessPolicyList
	if err := r.List(ctx, &policies, client.InNamespace(ns)); err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to list the policies of namespace %s: %w", ns, err)
	}
	now := time.Now()
	set := revocation.Of(revs.Items, now)
	var shared *metav1.Time
	var shareErr error
	if r.Store != nil {
		// Written even when no policy uses Redis yet: one that switches to it reads them at once.
		if _, shareErr = r.Store.SetRevocations(ctx, ns, set.Shared()); shareErr == nil {
			t := metav1.NewTime(now)
			shared = &t
		}
	}
	trusting := trustingPolicies(policies.Items)
	var errs []error
	for i := range revs.Items {
		if err := r.report(ctx, &revs.Items[i], set, trusting, shared, shareErr); err != nil {
			errs = append(errs, err)
		}
	}
	if shareErr != nil {
		errs = append(errs, shareErr)
	}
	return ctrl.Result{RequeueAfter: r.requeue(set, now)}, errors.Join(errs...)
}

// requeue is when to look again: at the next expiry, and every resync while Redis holds revocations.
func (r *RevocationReconciler) requeue(set revocation.Set, now time.Time) time.Duration {
	var after time.Duration
	if !set.Next.IsZero() {
		after = set.Next.Sub(now) + time.Second
	}
	if r.Store != nil && len(set.Active) > 0 {
		resync := r.Resync
		if resync == 0 {
			resync = DefaultRevocationResync
		}
		if after == 0 || resync < after {
			after = resync
		}
	}
	return after
}

// trustingPolicies maps each issuer to the names of the policies whose end-user settings trust it.
func trustingPolicies(ps []v1alpha1.ClaudeAccessPolicy) map[string][]string {
	out := map[string][]string{}
	for _, p := range ps {
		e := p.Spec.EndUser
		if e == nil || e.Mode == v1alpha1.EndUserDisabled || p.DeletionTimestamp != nil {
			continue
		}
		for _, is := range e.Issuers {
			out[is.URL] = append(out[is.URL], p.Name)
		}
	}
	for k := range out {
		slices.Sort(out[k])
		out[k] = slices.Compact(out[k])
	}
	return out
}

// report writes one revocation's status.
func (r *RevocationReconciler) report(ctx context.Context, rev *v1alpha1.ClaudeRevocation, set revocation.Set, trusting map[string][]string,
	shared *metav1.Time, shareErr error) error {
	orig := rev.DeepCopy()
	policies := trusting[rev.Spec.Issuer]
	rev.Status.Policies = policies[:min(len(policies), 64)]
	cond := metav1.Condition{Type: v1alpha1.ConditionReady}
	switch {
	case in(set.Expired, rev):
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonRevocationExpired
		cond.Message = fmt.Sprintf("Expired at %s: the token or user is accepted again", rev.Spec.ExpiresAt.UTC().Format(time.RFC3339))
		rev.Status.SharedAt = nil
	case in(set.Over, rev):
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonTooManyRevocations
		cond.Message = fmt.Sprintf("Not in force: namespace %s has more than %d revocations in force, and this is one of the newest; delete expired ones or revoke the user (subject) instead of each token",
			rev.Namespace, revocation.MaxPerNamespace)
		rev.Status.SharedAt = nil
	case len(policies) == 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonNoPolicyTrustsIssuer
		cond.Message = fmt.Sprintf("No policy in namespace %s trusts issuer %q (spec.endUser.issuers[].url, compared exactly); the revocation applies to any that does", rev.Namespace, rev.Spec.Issuer)
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonRevoked
		cond.Message = "Refused by the sidecars of " + policyList(policies) + r.delivery(shareErr)
	}
	if shared != nil && rev.Status.SharedAt == nil && cond.Reason != v1alpha1.ReasonRevocationExpired && cond.Reason != v1alpha1.ReasonTooManyRevocations {
		rev.Status.SharedAt = shared
	}
	conditions.Set(rev, cond)
	rev.Status.ObservedGeneration = rev.Generation
	_, err := patchStatus(ctx, r.Client, r.Recorder, orig, rev, !equality.Semantic.DeepEqual(orig.Status, rev.Status))
	return err
}

// delivery says how the revocation reaches the sidecars.
func (r *RevocationReconciler) delivery(shareErr error) string {
	switch {
	case r.Store == nil:
		return " once the kubelet refreshes their config (about a minute)"
	case shareErr != nil:
		return " once the kubelet refreshes their config (about a minute): writing it to Redis failed (retrying), so sidecars with the Redis backend do not have it sooner"
	}
	return ": within seconds with the Redis limit backend, else once the kubelet refreshes their config (about a minute)"
}

func policyList(names []string) string {
	if len(names) == 1 {
		return "policy " + names[0]
	}
	return "policies " + strings.Join(names, ", ")
}

func in(list []v1alpha1.ClaudeRevocation, r *v1alpha1.ClaudeRevocation) bool {
	return slices.ContainsFunc(list, func(o v1alpha1.ClaudeRevocation) bool { return o.UID == r.UID })
}

// SetupWithManager registers the reconciler: a namespace is reconciled when one of its revocations or
// policies changes.
func (r *RevocationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toNamespace := func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clauderevocation").
		Watches(&v1alpha1.ClaudeRevocation{}, handler.EnqueueRequestsFromMapFunc(toNamespace),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deleting{}))).
		Watches(&v1alpha1.ClaudeAccessPolicy{}, handler.EnqueueRequestsFromMapFunc(toNamespace),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deleting{}))).
		Complete(r)
}
