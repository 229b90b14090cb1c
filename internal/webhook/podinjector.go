// Package webhook serves the pod injection webhook. It gathers what the decision needs from the
// manager's cache (the namespace's labels and policies, and the selected policy rendered as the
// controller renders it), then hands the pod to the pure inject.Mutate;
// controller-runtime computes the JSON patch from the typed pod.
package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/render"
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
	// Render are the operator's settings for rendering a policy, the policy controller's own: the
	// webhook renders the selected policy as the controller does to decide the sidecar's mounts.
	Render effective.Options
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
	ns.Render = func(p *v1alpha1.ClaudeAccessPolicy) (*policyconfig.Config, error) {
		res, err := render.Config(ctx, w.Client, p, w.Render)
		return res.Config, err
	}
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
