package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// TestNotInjectedReason: each way a selected pod ends up without the policy's sidecar is told apart;
// a pod that opted out is described as opted out (the webhook never sees it), not as one to recreate.
func TestNotInjectedReason(t *testing.T) {
	p := &v1alpha1.ClaudeAccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "chat"}}
	cases := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		want        string
	}{
		{"injected by this policy", nil, map[string]string{wellknown.AnnotationStatus: wellknown.StatusInjected, wellknown.AnnotationPolicy: "chat"}, ""},
		{"injected by an older policy", nil, map[string]string{wellknown.AnnotationStatus: wellknown.StatusInjected, wellknown.AnnotationPolicy: "old"},
			"injected with ClaudeAccessPolicy old, which is older"},
		{"skipped by the webhook", nil, map[string]string{wellknown.AnnotationStatus: wellknown.StatusSkipped + ": container app uses port 8787"},
			"container app uses port 8787"},
		{"opted out", map[string]string{wellknown.LabelInject: "false"}, nil, "the pod opted out with label " + wellknown.LabelInject + "=false"},
		{"created before the policy", nil, nil,
			"created before this policy selected it, or while the webhook was unreachable; recreate the pod to inject it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "chat-0", Labels: c.labels, Annotations: c.annotations}}
			if got := notInjectedReason(p, pod); got != c.want {
				t.Fatalf("reason %q, want %q", got, c.want)
			}
		})
	}
}
