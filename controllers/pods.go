package controllers

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// podView is what the policy reconciler knows of the pods in a namespace: metadata only, because labels
// and annotations are all a selector or an injection record needs, and caching whole pods costs memory.
type podView struct {
	counts v1alpha1.PodCounts
	// overlaps maps each other policy that selects some of the same pods to one such pod's name.
	overlaps map[string]string
}

func listPodMetadata(ctx context.Context, c client.Reader, namespace string) ([]metav1.PartialObjectMetadata, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("failed to list pods in %s: %w", namespace, err)
	}
	return list.Items, nil
}

// viewPods counts the pods p selects and which of them other policies select too.
func viewPods(p *v1alpha1.ClaudeAccessPolicy, siblings []v1alpha1.ClaudeAccessPolicy, pods []metav1.PartialObjectMetadata) (podView, error) {
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
	if err != nil {
		return podView{}, fmt.Errorf("spec.podSelector is invalid: %w", err)
	}
	type other struct {
		name string
		sel  labels.Selector
	}
	var others []other
	for i := range siblings {
		s := &siblings[i]
		if s.Name == p.Name || s.DeletionTimestamp != nil {
			continue
		}
		if os, err := metav1.LabelSelectorAsSelector(&s.Spec.PodSelector); err == nil {
			others = append(others, other{s.Name, os})
		}
	}
	v := podView{overlaps: map[string]string{}}
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		v.counts.Selected++
		if pod.Annotations[wellknown.AnnotationPolicy] == p.Name && pod.Annotations[wellknown.AnnotationStatus] == wellknown.StatusInjected {
			v.counts.Injected++
		}
		conflicting := false
		for _, o := range others {
			if o.sel.Matches(labels.Set(pod.Labels)) {
				conflicting = true
				if _, ok := v.overlaps[o.name]; !ok {
					v.overlaps[o.name] = pod.Name
				}
			}
		}
		if conflicting {
			v.counts.Conflicting++
		}
	}
	v.counts.NotInjected = v.counts.Selected - v.counts.Injected
	return v, nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
