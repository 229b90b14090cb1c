package controllers

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/rediskeys"
)

// SpendInterval is how often the spend of a budget is read again.
const SpendInterval = 30 * time.Second

// maxSpendEntries bounds status.spend (the CRDs' MaxItems).
const maxSpendEntries = 32

// SpendOptions turn on the spend controllers (nil: off, without Redis).
type SpendOptions struct {
	Counters CounterReader
	// Interval is how often a budget's counter is read again (default SpendInterval).
	Interval time.Duration
}

func (o *SpendOptions) interval() time.Duration {
	if o.Interval > 0 {
		return o.Interval
	}
	return SpendInterval
}

// CounterReader reads the limiter's counters: the amount of each key, 0 for one that does not exist
// (redisacl.Counters).
type CounterReader interface {
	Amounts(ctx context.Context, keys []string) ([]int64, error)
}

// budgetRef is one Namespace-counted budget whose counter the operator reads: the same key the
// sidecars' limiter writes (rediskeys.Counter).
type budgetRef struct {
	name, source, namespace, window string
	usd                             bool
	limit                           int64 // tokens or micro-USD
	key                             string
	resets                          time.Time
}

// spendOf reads refs' counters and returns their spend, tightest first (the smallest share left).
func spendOf(ctx context.Context, r CounterReader, refs []budgetRef, now time.Time) ([]v1alpha1.BudgetSpend, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(refs))
	for i, b := range refs {
		keys[i] = b.key
	}
	amounts, err := r.Amounts(ctx, keys)
	if err != nil {
		return nil, err
	}
	type entry struct {
		s    v1alpha1.BudgetSpend
		left float64 // share of the limit left
	}
	es := make([]entry, len(refs))
	for i, b := range refs {
		spent := max(amounts[i], 0)
		left := max(b.limit-spent, 0)
		es[i] = entry{v1alpha1.BudgetSpend{Budget: b.name, Source: b.source, Namespace: b.namespace, Window: b.window,
			Spent: formatAmount(spent, b.usd), Remaining: formatAmount(left, b.usd), Limit: formatAmount(b.limit, b.usd),
			ResetsAt: metav1.NewTime(b.resets), ObservedAt: metav1.NewTime(now)}, float64(left) / float64(max(b.limit, 1))}
	}
	slices.SortStableFunc(es, func(a, b entry) int {
		switch {
		case a.left < b.left:
			return -1
		case a.left > b.left:
			return 1
		}
		return strings.Compare(a.s.Namespace+"/"+a.s.Budget, b.s.Namespace+"/"+b.s.Budget)
	})
	out := make([]v1alpha1.BudgetSpend, 0, min(len(es), maxSpendEntries))
	for _, e := range es[:min(len(es), maxSpendEntries)] {
		out = append(out, e.s)
	}
	return out, nil
}

// budgetRefFor returns the counter of one Namespace-counted budget of namespace ns in the window
// containing now; policy and tenant name the owner as the sidecars' keys do. ok is false for a budget
// counted per caller, or one whose amount cannot be read.
func budgetRefFor(ns, policy, tenant string, b v1alpha1.EffectiveLimit, now time.Time) (budgetRef, bool) {
	if b.Key != policyconfig.KeyNamespace {
		return budgetRef{}, false
	}
	ref := budgetRef{name: b.Name, source: b.Source, namespace: ns, window: b.Window, limit: b.Tokens}
	if b.USD != "" {
		v, ok := new(big.Rat).SetString(b.USD)
		if !ok {
			return budgetRef{}, false
		}
		micro := new(big.Rat).Mul(v, big.NewRat(1_000_000, 1))
		if !micro.IsInt() || !micro.Num().IsInt64() {
			return budgetRef{}, false
		}
		ref.usd, ref.limit = true, micro.Num().Int64()
	}
	start, end := rediskeys.Window(b.Window, now)
	scope := rediskeys.Scope(policy, tenant, b.Source, rediskeys.KindBudget, b.Name)
	ref.key = rediskeys.Counter(rediskeys.NamespacePrefix(ns), scope, b.Window, policyconfig.KeyNamespace, ns, start)
	ref.resets = end
	return ref, true
}

// formatAmount renders an amount of tokens, or of micro-USD as dollars: "$12.34", with more decimals
// (up to the micro-dollar) only where they are not zero.
func formatAmount(v int64, usd bool) string {
	if !usd {
		return strconv.FormatInt(v, 10)
	}
	s := fmt.Sprintf("%d.%06d", v/1_000_000, v%1_000_000)
	s = strings.TrimRight(s, "0")
	if i := strings.IndexByte(s, '.'); len(s)-i < 3 {
		s += strings.Repeat("0", 3-(len(s)-i))
	}
	return "$" + s
}

// PolicySpendReconciler shows, in each Redis-backed policy's status.spend, what its budgets counted per
// Namespace (its own and its tenant's) have spent in their current windows. It writes nothing but
// status.spend, which no other controller writes.
type PolicySpendReconciler struct {
	client.Client
	SpendOptions
}

// Reconcile reads one policy's budgets' counters and requeues itself to read them again.
func (r *PolicySpendReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &v1alpha1.ClaudeAccessPolicy{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := time.Now()
	var refs []budgetRef
	// A policy that is not admitted renders deny-all and spends nothing.
	if e := p.Status.Effective; e != nil && e.LimitsBackend == policyconfig.BackendRedis &&
		meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady) {
		for _, b := range e.Budgets {
			if ref, ok := budgetRefFor(p.Namespace, p.Name, p.Status.Tenant, b, now); ok {
				refs = append(refs, ref)
			}
		}
	}
	return publishSpend(ctx, r.Client, &r.SpendOptions, p, &p.Status.Spend, refs, now)
}

// publishSpend reads refs' counters into *field, obj's status.spend, and says when to read them again
// (never, when there is nothing to read).
func publishSpend(ctx context.Context, c client.Client, o *SpendOptions, obj client.Object, field *[]v1alpha1.BudgetSpend,
	refs []budgetRef, now time.Time) (ctrl.Result, error) {
	spend, err := spendOf(ctx, o.Counters, refs, now)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to read the spend of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	if err := patchSpend(ctx, c, obj, field, spend, o.interval()); err != nil {
		return ctrl.Result{}, err
	}
	if len(refs) == 0 {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: o.interval()}, nil
}

// patchSpend sets *field to spend and patches obj's status when the amounts changed, or when what is
// there was read interval or more ago. Its own patch wakes the reconciler again, which then finds
// nothing to write: observedAt alone never differs by less than the interval.
func patchSpend(ctx context.Context, c client.Client, obj client.Object, field *[]v1alpha1.BudgetSpend, spend []v1alpha1.BudgetSpend, interval time.Duration) error {
	if !spendChanged(*field, spend, interval) {
		return nil
	}
	orig, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return fmt.Errorf("cannot copy %T", obj)
	}
	*field = spend
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("failed to patch status.spend: %w", err)
	}
	return nil
}

// spendChanged reports whether next says more than cur: other amounts, or a fresher reading.
func spendChanged(cur, next []v1alpha1.BudgetSpend, interval time.Duration) bool {
	if len(cur) != len(next) {
		return true
	}
	for i := range cur {
		a, b := cur[i], next[i]
		if b.ObservedAt.Sub(a.ObservedAt.Time) >= interval {
			return true
		}
		a.ObservedAt = b.ObservedAt
		if !equality.Semantic.DeepEqual(a, b) {
			return true
		}
	}
	return false
}

// SetupWithManager registers the reconciler; it reacts to policies' status (effective budgets,
// admission) and requeues itself every SpendInterval.
func (r *PolicySpendReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("policyspend").For(&v1alpha1.ClaudeAccessPolicy{}).Complete(r)
}

// TenantSpendReconciler shows, in each ClaudeTenant's status.spend, what its budgets counted per
// Namespace have spent in each of its namespaces in the current windows.
type TenantSpendReconciler struct {
	client.Client
	SpendOptions
}

// Reconcile reads one tenant's budgets' counters and requeues itself to read them again.
func (r *TenantSpendReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	t := &v1alpha1.ClaudeTenant{}
	if err := r.Get(ctx, req.NamespacedName, t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := time.Now()
	var refs []budgetRef
	if len(t.Spec.Budgets) > 0 {
		sel, err := metav1.LabelSelectorAsSelector(&t.Spec.NamespaceSelector)
		if err != nil {
			return ctrl.Result{}, nil // the tenant controller reports it
		}
		namespaces, err := namespacesMatching(ctx, r.Client, sel)
		if err != nil {
			return ctrl.Result{}, err
		}
		budgets := effective.BudgetLimits(t.Spec.Budgets, policyconfig.SourceTenant)
		for _, ns := range namespaces {
			for _, b := range budgets {
				if ref, ok := budgetRefFor(ns.Name, "", t.Name, b, now); ok {
					refs = append(refs, ref)
				}
			}
		}
	}
	return publishSpend(ctx, r.Client, &r.SpendOptions, t, &t.Status.Spend, refs, now)
}

// SetupWithManager registers the reconciler; it requeues itself every SpendInterval.
func (r *TenantSpendReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("tenantspend").For(&v1alpha1.ClaudeTenant{}).Complete(r)
}
