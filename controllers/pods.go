package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

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
	items, err := listPods(ctx, c, client.InNamespace(namespace))
	if err != nil {
		return nil, fmt.Errorf("failed to list pods in %s: %w", namespace, err)
	}
	return items, nil
}

// listPods lists the metadata of the pods matching opts (from the cache).
func listPods(ctx context.Context, c client.Reader, opts ...client.ListOption) ([]metav1.PartialObjectMetadata, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := c.List(ctx, list, opts...); err != nil {
		return nil, err
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
	reasons := reasonCounter{}
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		v.counts.Selected++
		if reason := notInjectedReason(p, pod); reason == "" {
			v.counts.Injected++
		} else {
			reasons.add(reason, pod.Name)
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
	v.counts.NotInjectedReasons = reasons.list(8)
	return v, nil
}

// notInjectedReason says why a selected pod does not run p's sidecar, or "" when it does.
func notInjectedReason(p *v1alpha1.ClaudeAccessPolicy, pod *metav1.PartialObjectMetadata) string {
	status, policy := pod.Annotations[wellknown.AnnotationStatus], pod.Annotations[wellknown.AnnotationPolicy]
	switch {
	case status == wellknown.StatusInjected && policy == p.Name:
		return ""
	case status == wellknown.StatusInjected:
		return fmt.Sprintf("injected with ClaudeAccessPolicy %s, which is older", policy)
	case strings.HasPrefix(status, wellknown.StatusSkipped+": "):
		return strings.TrimPrefix(status, wellknown.StatusSkipped+": ")
	case pod.Labels[wellknown.LabelInject] == "false":
		// The webhook's object selector leaves such pods out, so they carry no skip annotation.
		return "the pod opted out with label " + wellknown.LabelInject + "=false"
	default:
		return "created before this policy selected it, or while the webhook was unreachable; recreate the pod to inject it"
	}
}

// reasonCounter groups pods by reason, keeping the first pod name (in sort order) of each as an
// example, so the status does not change with list order.
type reasonCounter map[string]*v1alpha1.NotInjectedReason

func (r reasonCounter) add(reason, pod string) {
	if e, ok := r[reason]; ok {
		e.Pods++
		e.Example = min(e.Example, pod)
		return
	}
	r[reason] = &v1alpha1.NotInjectedReason{Reason: reason, Pods: 1, Example: pod}
}

// list returns at most max reasons, the most frequent first.
func (r reasonCounter) list(max int) []v1alpha1.NotInjectedReason {
	out := make([]v1alpha1.NotInjectedReason, 0, len(r))
	for _, e := range r {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pods != out[j].Pods {
			return out[i].Pods > out[j].Pods
		}
		return out[i].Reason < out[j].Reason
	})
	if len(out) > max {
		out = out[:max]
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
