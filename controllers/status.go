package controllers

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// conditioned is an object of ours with status conditions.
type conditioned interface {
	client.Object
	GetConditions() []metav1.Condition
}

// patchStatus writes obj's status as a merge patch from orig when changed says it differs, and records
// an event for every condition that changed. It reports whether it wrote.
func patchStatus(ctx context.Context, c client.Client, rec events.EventRecorder, orig, obj conditioned, changed bool) (bool, error) {
	if !changed {
		return false, nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
		// Objects read with the typed client carry no TypeMeta: name the Go type instead.
		kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*v1alpha1.")
		return false, fmt.Errorf("failed to patch the status of %s %s: %w", kind, client.ObjectKeyFromObject(obj), err)
	}
	emitConditionEvents(rec, obj, orig.GetConditions(), obj.GetConditions())
	return true, nil
}
