package controllers

import (
	"context"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// PodCountDelay is how long pod events wait before they reach the policy reconciler. A Deployment
// scaling up creates pods in bursts; waiting lets the workqueue fold a burst into one reconcile (and one
// status write) instead of one per pod, which matters because those writes compete with the pod
// creations themselves. Pod counts in status are therefore at most this much behind.
var PodCountDelay = 2 * time.Second

// delayedMap is EnqueueRequestsFromMapFunc with every request added after a delay.
type delayedMap struct {
	fn    handler.MapFunc
	delay time.Duration
}

var _ handler.EventHandler = delayedMap{}

func (d delayedMap) add(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	for _, req := range d.fn(ctx, o) {
		q.AddAfter(req, d.delay)
	}
}

func (d delayedMap) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	d.add(ctx, e.Object, q)
}

func (d delayedMap) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	d.add(ctx, e.ObjectNew, q)
}

func (d delayedMap) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	d.add(ctx, e.Object, q)
}

func (d delayedMap) Generic(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	d.add(ctx, e.Object, q)
}
