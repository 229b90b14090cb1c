// Package webhook serves the pod injection webhook. It gathers what the decision needs from the
// manager's cache (the namespace's labels and policies, and the selected policy's rendered config, if
// the policy's status vouches for it), then hands the pod to the pure inject.Mutate;
// controller-runtime computes the JSON patch from the typed pod.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Path is where the pod injection webhook is served (controller-runtime's path for core/v1 Pod).
const Path = "/mutate--v1-pod"

var decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "claude_guard_injection_decisions_total",
	Help: "Pod admission decisions of the injection webhook by outcome (Injected, AlreadyInjected, Skipped, None).",
}, []string{"outcome"})

// Duration is the webhook's own handling time (lookups, decision, mutation), excluding decoding the
// admission review and computing the patch.
var Duration = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "claude_guard_injection_duration_seconds",
	Help:    "Time the injection webhook spends deciding and mutating one pod.",
	Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1},
})

func init() { metrics.Registry.MustRegister(decisions, Duration) }

// PodInjector is the typed defaulter for pods.
type PodInjector struct {
	Client   client.Reader
	Recorder events.EventRecorder
	Operator inject.Operator
}

// SetupWithManager registers the webhook on the manager's webhook server (before the manager starts).
func (w *PodInjector) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &corev1.Pod{}).WithDefaulter(w).Complete()
}

// Handler is the admission handler to register at Path on a webhook server that is not the manager's
// own (the manager starts a server late, once its certificate exists).
func (w *PodInjector) Handler(scheme *runtime.Scheme) http.Handler {
	return admission.WithDefaulter[*corev1.Pod](scheme, w).WithRecoverPanic(true)
}

// Default injects the sidecar into pod when its namespace or a policy asks for it.
func (w *PodInjector) Default(ctx context.Context, pod *corev1.Pod) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the admission request: %w", err)
	}
	if req.Operation != "CREATE" {
		return nil
	}
	defer func(t0 time.Time) { Duration.Observe(time.Since(t0).Seconds()) }(time.Now())
	ns := inject.Namespace{Name: req.Namespace}
	if ns.Name == "" {
		ns.Name = pod.Namespace
	}
	if ns.Name == "kube-system" || ns.Name == w.Operator.Namespace {
		decisions.WithLabelValues("None").Inc()
		return nil
	}
	if err := w.load(ctx, &ns); err != nil {
		return err
	}
	ns.Render = func(p *v1alpha1.ClaudeAccessPolicy) (*policyconfig.Config, error) { return w.awaitVouched(ctx, p) }
	d, err := inject.Mutate(pod, ns, w.Operator)
	if err != nil {
		return err
	}
	outcome := string(d.Outcome)
	if outcome == "" {
		outcome = "None"
	}
	decisions.WithLabelValues(outcome).Inc()
	log := ctrl.LoggerFrom(ctx).WithValues("namespace", ns.Name, "pod", podName(pod))
	switch d.Outcome {
	case inject.Injected:
		log.V(1).Info("Injected sidecar", "policy", d.Policy.Name)
	case inject.Skipped:
		log.Info("Skipped sidecar injection", "reason", d.Reason)
		// The webhook declares no side effects: a dry run (kubectl --dry-run=server) records nothing.
		if req.DryRun == nil || !*req.DryRun {
			w.event(pod, ns.Name, d)
		}
	}
	return nil
}

// load reads the namespace's labels and policies from the cache.
func (w *PodInjector) load(ctx context.Context, ns *inject.Namespace) error {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := w.Client.Get(ctx, client.ObjectKey{Name: ns.Name}, meta); err != nil {
		return fmt.Errorf("failed to read namespace %s: %w", ns.Name, err)
	}
	ns.Labels = meta.Labels
	var list v1alpha1.ClaudeAccessPolicyList
	if err := w.Client.List(ctx, &list, client.InNamespace(ns.Name)); err != nil {
		return fmt.Errorf("failed to list ClaudeAccessPolicies in %s: %w", ns.Name, err)
	}
	ns.Policies = list.Items
	return nil
}

// event records a skipped injection on the pod's controller (the pod itself does not exist yet), or on
// the policy when the pod has no owner. A pod with a name is the event's related object: the recorder
// folds events with the same regarding, reason and related object into one series that keeps the first
// message, and without it the skips of two bare pods of one policy would read as the first pod's.
func (w *PodInjector) event(pod *corev1.Pod, namespace string, d inject.Decision) {
	var related runtime.Object
	if pod.Name != "" {
		related = &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: namespace, Name: pod.Name}
	}
	var regarding runtime.Object
	if owner := metav1.GetControllerOf(pod); owner != nil {
		o := &metav1.PartialObjectMetadata{
			TypeMeta:   metav1.TypeMeta{APIVersion: owner.APIVersion, Kind: owner.Kind},
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: owner.Name, UID: owner.UID},
		}
		regarding = o
	} else if d.Policy != nil {
		regarding = d.Policy
	}
	if regarding == nil {
		return
	}
	w.Recorder.Eventf(regarding, related, corev1.EventTypeWarning, v1alpha1.ReasonInjectionSkipped, "Inject",
		"Pod %s was created without the claude-guard sidecar: %s", podName(pod), d.Reason)
}

func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return pod.GenerateName + "<generated>"
}

// NotRendered is a policy whose rendered config the webhook cannot vouch for yet: the pod is refused,
// and its controller creates it again (the policy controller renders within a second of a change).
type NotRendered struct {
	Policy, Reason string
}

func (e *NotRendered) Error() string {
	return fmt.Sprintf("%s; the pod is refused until the controller has rendered it (kubectl describe claudeaccesspolicy %s)", e.Reason, e.Policy)
}

// renderWait is how long a pod's admission waits for its policy's config to be vouched for: a policy
// applied together with its pods (one kubectl apply) is rendered within this, well inside the webhook's
// timeout, and the pods need no retry.
const renderWait = 2 * time.Second

// awaitVouched is vouched, retried from the cache for up to renderWait while the config is not rendered.
func (w *PodInjector) awaitVouched(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy) (*policyconfig.Config, error) {
	deadline := time.Now().Add(renderWait)
	for {
		c, err := w.vouched(ctx, p)
		var nr *NotRendered
		if !errors.As(err, &nr) || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
		// The policy's status, too, comes from the cache.
		fresh := &v1alpha1.ClaudeAccessPolicy{}
		if err := w.Client.Get(ctx, client.ObjectKeyFromObject(p), fresh); err == nil && fresh.UID == p.UID {
			p = fresh
		}
	}
}

// vouched returns the config the pod's sidecar will load: the policy's ConfigMap, from the cache, if its
// content is what the policy's status says the controller rendered (status.renderedConfig.hash, written
// only after the controller's own write succeeded). The webhook mounts nothing else: a ConfigMap of
// that name that the controller did not write (planted before the policy, left by a failing apply)
// never reaches a sidecar, and the mounts follow the very document the sidecar obeys.
func (w *PodInjector) vouched(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy) (*policyconfig.Config, error) {
	ref := p.Status.RenderedConfig
	if ref == nil || ref.Hash == "" {
		return nil, &NotRendered{Policy: p.Name, Reason: "it has not been rendered yet (status.renderedConfig is empty)"}
	}
	cm := &corev1.ConfigMap{}
	if err := w.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: wellknown.ConfigMapName(p.Name)}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &NotRendered{Policy: p.Name, Reason: "its ConfigMap " + wellknown.ConfigMapName(p.Name) + " does not exist"}
		}
		return nil, fmt.Errorf("failed to read ConfigMap %s/%s: %w", p.Namespace, wellknown.ConfigMapName(p.Name), err)
	}
	data := []byte(cm.Data[wellknown.ConfigKey])
	if h := policyconfig.Hash(data); h != ref.Hash {
		return nil, &NotRendered{Policy: p.Name, Reason: fmt.Sprintf("ConfigMap %s does not hold the config its status vouches for (content hash %s, status.renderedConfig.hash %s)", cm.Name, h, ref.Hash)}
	}
	c, err := policyconfig.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return c, nil
}
