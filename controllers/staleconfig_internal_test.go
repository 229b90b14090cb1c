package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// TestRendersRecent: sidecars are asked only within staleWindow of a new rendered hash.
func TestRendersRecent(t *testing.T) {
	var rs renders
	key := types.NamespacedName{Namespace: "shop", Name: "storefront"}
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		hash  string
		after time.Duration
		want  bool
	}{
		{"a", 0, true},                         // first render
		{"a", staleWindow - time.Second, true}, // still within the kubelet's window
		{"a", staleWindow, false},              // long settled
		{"b", staleWindow + time.Second, true}, // a new render opens a new window
		{"b", 2*staleWindow + time.Second, false},
	} {
		if got := rs.recent(key, step.hash, t0.Add(step.after)); got != step.want {
			t.Errorf("hash %s after %s: recent = %v, want %v", step.hash, step.after, got, step.want)
		}
	}
	rs.forget(key)
	if !rs.recent(key, "b", t0.Add(3*staleWindow)) {
		t.Error("a forgotten policy's next render is not recent")
	}
}

func TestRunsSidecarOf(t *testing.T) {
	pod := func(mut func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{
				wellknown.AnnotationStatus: wellknown.StatusInjected, wellknown.AnnotationPolicy: "storefront"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.12",
				InitContainerStatuses: []corev1.ContainerStatus{{Name: wellknown.SidecarContainerName, Ready: true}}},
		}
		mut(p)
		return p
	}
	for name, tc := range map[string]struct {
		pod  *corev1.Pod
		want bool
	}{
		"running with a ready sidecar": {pod(func(*corev1.Pod) {}), true},
		"another policy's sidecar":     {pod(func(p *corev1.Pod) { p.Annotations[wellknown.AnnotationPolicy] = "other" }), false},
		"not injected":                 {pod(func(p *corev1.Pod) { delete(p.Annotations, wellknown.AnnotationStatus) }), false},
		"pending":                      {pod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }), false},
		"no pod IP":                    {pod(func(p *corev1.Pod) { p.Status.PodIP = "" }), false},
		"sidecar not ready":            {pod(func(p *corev1.Pod) { p.Status.InitContainerStatuses[0].Ready = false }), false},
		"terminating":                  {pod(func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }), false},
	} {
		if got := runsSidecarOf(tc.pod, "storefront"); got != tc.want {
			t.Errorf("%s: runsSidecarOf = %v, want %v", name, got, tc.want)
		}
	}
}
