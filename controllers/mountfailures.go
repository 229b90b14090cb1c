package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// The kubelet reports a volume it cannot set up with a FailedMount event on the pod, repeated every
// couple of minutes while it keeps failing. That is how the operator learns that an injected pod cannot
// start because of what its sidecar mounts (a secretRef naming a Secret that does not exist, a SPIFFE CSI
// driver the node lacks), without reading the tenant's Secrets, which its RBAC does not allow.
const (
	reasonFailedMount = "FailedMount"
	// mountFailureFresh is how recent the last FailedMount must be for a pod to count as blocked: longer
	// than the kubelet's retry interval (about two minutes), so a pod still failing stays counted.
	mountFailureFresh = 5 * time.Minute
	// mountFailureRecheck is how soon a policy with blocked pods is looked at again: once the Secret
	// exists the pod starts and no event says so.
	mountFailureRecheck = time.Minute
)

// mountFailure is one injected pod that cannot start, and what the kubelet said.
type mountFailure struct{ pod, volume, message string }

// mountFailures returns the pods injected with p whose sidecar volumes failed to mount recently, sorted
// by pod name. pods are the namespace's pods (metadata).
func (r *PolicyReconciler) mountFailures(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy, pods []metav1.PartialObjectMetadata, now time.Time) ([]mountFailure, error) {
	var events corev1.EventList
	if err := r.List(ctx, &events, client.InNamespace(p.Namespace)); err != nil {
		return nil, fmt.Errorf("failed to list the FailedMount events of namespace %s: %w", p.Namespace, err)
	}
	injected := map[string]string{} // UID -> name
	for _, pod := range pods {
		if pod.Annotations[wellknown.AnnotationStatus] == wellknown.StatusInjected && pod.Annotations[wellknown.AnnotationPolicy] == p.Name {
			injected[string(pod.UID)] = pod.Name
		}
	}
	seen := map[string]bool{}
	var out []mountFailure
	for _, e := range events.Items {
		name, ok := injected[string(e.InvolvedObject.UID)]
		if !ok || e.Reason != reasonFailedMount || e.InvolvedObject.Kind != "Pod" || seen[name] || now.Sub(lastSeen(&e)) > mountFailureFresh {
			continue
		}
		vol := failedVolume(e.Message)
		if vol == "" {
			continue
		}
		seen[name] = true
		started, err := r.sidecarStarted(ctx, p.Namespace, name)
		if err != nil {
			return nil, err
		}
		if !started {
			out = append(out, mountFailure{pod: name, volume: vol, message: e.Message})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pod < out[j].pod })
	return out, nil
}

// sidecarStarted reports whether the pod's sidecar container has started since (its volumes mounted
// after all: the Secret was created). Read from the API server, for the few pods that failed: the cache
// holds pods as metadata only.
func (r *PolicyReconciler) sidecarStarted(ctx context.Context, ns, name string) (bool, error) {
	pod := &corev1.Pod{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	for _, st := range pod.Status.InitContainerStatuses {
		if st.Name == wellknown.SidecarContainerName && (st.State.Running != nil || st.State.Terminated != nil || st.RestartCount > 0) {
			return true, nil
		}
	}
	return false, nil
}

// failedVolume is the sidecar volume a kubelet FailedMount message is about, or "".
func failedVolume(msg string) string {
	for _, v := range inject.SidecarVolumes { // a mount failure of one of them is the policy's
		if strings.Contains(msg, `volume "`+v+`"`) {
			return v
		}
	}
	return ""
}

func lastSeen(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	default:
		return e.CreationTimestamp.Time
	}
}

// mountFailureMessage is the Ready=False message for blocked pods: the first pod, the kubelet's words,
// and what to change.
func mountFailureMessage(p *v1alpha1.ClaudeAccessPolicy, fs []mountFailure) string {
	f := fs[0]
	fix := "see the pod's events (kubectl describe pod " + f.pod + " -n " + p.Namespace + ")"
	switch {
	case f.volume == inject.VolumeSecret && p.Spec.Credentials.SecretRef != nil:
		ref := p.Spec.Credentials.SecretRef
		fix = fmt.Sprintf("create Secret %s with key %s in namespace %s (spec.credentials.secretRef), or point secretRef at one that exists", ref.Name, ref.Key, p.Namespace)
	case f.volume == inject.VolumeSPIFFE:
		fix = "the node has no SPIFFE CSI driver: ask the platform team to install SPIRE (docs/install.md, \"SPIRE\") or to turn the socket off (chart value spiffe.socket.mode)"
	}
	more := ""
	if len(fs) > 1 {
		more = fmt.Sprintf(" (and %d more pods)", len(fs)-1)
	}
	return fmt.Sprintf("pod %s%s cannot start: its sidecar's volume %s does not mount (kubelet: %s); %s", f.pod, more, f.volume, kubeletCause(f.message), fix)
}

// kubeletCause trims a FailedMount message to its cause ("secret \"anthropic\" not found").
func kubeletCause(msg string) string {
	if _, cause, ok := strings.Cut(msg, " : "); ok {
		msg = cause
	}
	const max = 300
	if len(msg) > max {
		msg = msg[:max] + "…"
	}
	return msg
}
