package conditions

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
)

func TestSetStampsTheGenerationAndKeepsTheTransitionTime(t *testing.T) {
	p := &v1alpha1.ClaudeAccessPolicy{}
	p.Generation = 3
	Set(p, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNoTenant, Message: "a"})
	c := p.Status.Conditions[0]
	if c.ObservedGeneration != 3 || c.LastTransitionTime.IsZero() {
		t.Fatalf("first Set: %+v", c)
	}
	first := c.LastTransitionTime
	time.Sleep(1100 * time.Millisecond) // metav1.Time has second precision
	p.Generation = 4
	Set(p, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonTenantConflict, Message: "b"})
	if c := p.Status.Conditions[0]; c.ObservedGeneration != 4 || c.Reason != v1alpha1.ReasonTenantConflict || !c.LastTransitionTime.Equal(&first) {
		t.Fatalf("same status, new reason: %+v (transition time moved from %s)", c, first)
	}
	Set(p, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAdmitted})
	if c := p.Status.Conditions[0]; c.LastTransitionTime.Equal(&first) || len(p.Status.Conditions) != 1 {
		t.Fatalf("new status: %+v", p.Status.Conditions)
	}
}
