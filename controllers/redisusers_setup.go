package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// SetupWithManager registers the Redis user reconciler. A namespace is reconciled when a rendered
// ConfigMap in it changes, and for every user found in Redis by a periodic sweep: that finds users
// whose last policy went while the operator was down, which no ConfigMap event would bring back.
func (r *RedisUserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	found := make(chan event.TypedGenericEvent[string])
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		r.sweep(ctx, found)
		return nil
	})); err != nil {
		return err
	}
	toNamespace := func(_ context.Context, ns string) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: ns}}}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("redisusers").
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return toNamespace(ctx, o.GetNamespace())
		})).
		WatchesRawSource(source.Channel(found, handler.TypedEnqueueRequestsFromMapFunc(toNamespace))).
		Complete(r)
}

// sweep lists the namespace users in Redis at start and then every resync, and hands their namespaces
// to the reconciler, which deletes those without Redis policies. It runs on the leader only.
func (r *RedisUserReconciler) sweep(ctx context.Context, found chan<- event.TypedGenericEvent[string]) {
	log := ctrl.LoggerFrom(ctx).WithName("redisusers-sweep")
	t := time.NewTicker(r.resync())
	defer t.Stop()
	for {
		namespaces, err := r.Admin.Namespaces(ctx)
		if err != nil {
			// The reconciler reports outages on the policies; this only delays the clean-up.
			log.V(1).Info("Failed to list Redis users; retrying at the next sweep", "error", err.Error())
		}
		for _, ns := range namespaces {
			select {
			case found <- event.TypedGenericEvent[string]{Object: ns}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
