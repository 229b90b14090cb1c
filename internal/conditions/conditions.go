// Package conditions sets status conditions the way every controller of the operator does (cluster-api's
// conditions.Set shape): the object's generation is stamped as the condition's observedGeneration here,
// never by hand, and lastTransitionTime moves only when the status does.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Setter is an object with status conditions (the API types implement it).
type Setter interface {
	GetGeneration() int64
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// Set sets condition c on obj for obj's current generation.
func Set(obj Setter, c metav1.Condition) {
	c.ObservedGeneration = obj.GetGeneration()
	conds := obj.GetConditions()
	meta.SetStatusCondition(&conds, c)
	obj.SetConditions(conds)
}
