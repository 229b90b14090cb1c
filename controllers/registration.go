package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/render"
	"github.com/claude-guard/claude-guard/internal/spireentry"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// RegistrationReconciler gives each injected pod's sidecar its SPIFFE ID, and nothing else one: it
// writes one SPIRE ClusterStaticEntry per pod (internal/spireentry), which the SPIRE Controller Manager
// syncs into the SPIRE server, and deletes it when the pod, its policy or its tenant goes.
//
// An entry is written only after the stored pod's sidecar was checked against what injection renders
// for the pod's policy (inject.Verify): the annotations that say "injected" are the tenant's to write,
// the container is not. Pod containers are immutable apart from their image, and the entry selects the
// verified image, so the check is done once per pod.
//
// Pods are cached as metadata only (as the policy controller does); the full pod is read from the API
// server while its entry is due and not yet written.
type RegistrationReconciler struct {
	client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Inject    inject.Config
	Entries   spireentry.Options
	// CRDPoll is how often the manager looks for the ClusterStaticEntry kind while the SPIRE Controller
	// Manager's CRDs are not installed (SetupRegistration); zero means 20 s.
	CRDPoll time.Duration

	// refused remembers the UID of each pod whose sidecar failed verification, so its status churn is
	// not re-read and re-reported; it is forgotten when the pod goes.
	mu      sync.Mutex
	refused map[types.NamespacedName]types.UID
}

// +kubebuilder:rbac:groups=spire.spiffe.io,resources=clusterstaticentries,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get

// Reconcile makes the entries of pod req match what it is owed.
func (r *RegistrationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	existing, err := r.entriesOf(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	pod := &metav1.PartialObjectMetadata{}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	if err := r.Get(ctx, req.NamespacedName, pod); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("failed to get pod %s: %w", req, err)
		}
		pod = nil
	}
	var current *unstructured.Unstructured
	if pod != nil {
		if i := slices.IndexFunc(existing, func(e unstructured.Unstructured) bool { return e.GetName() == spireentry.Name(pod.UID) }); i >= 0 {
			current = &existing[i]
		}
	}
	owed, why, err := r.owed(ctx, pod, current)
	if err != nil {
		return ctrl.Result{}, err
	}
	keep := ""
	if owed != nil {
		keep = spireentry.Name(pod.UID)
	}
	for i := range existing {
		e := &existing[i]
		if e.GetName() == keep {
			continue
		}
		if err := r.Delete(ctx, e); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("failed to delete SPIRE entry %s: %w", e.GetName(), err)
		}
		log.Info("Deleted the SPIRE entry of a pod", "entry", e.GetName(), "reason", why)
	}
	if pod == nil {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if owed == nil || owed.entry == current || (current != nil && spireentry.SameSpec(current, owed.entry)) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.register(ctx, pod, owed)
}

// owedEntry is an entry a pod should have, and the policy whose render its sidecar must match. entry is
// the pod's current entry itself when that one is up to date.
type owedEntry struct {
	entry  *unstructured.Unstructured
	policy *v1alpha1.ClaudeAccessPolicy
	// plan is what the sidecar mounts under the policy's rendered config.
	plan inject.Plan
	full *corev1.Pod
}

// owed returns the entry pod should have, or nil and why it should have none. current is the entry
// written for this pod (its UID), if any. It reads the full pod and its node from the API server only
// when there is no current entry for the trust domain and cluster settings: the status churn of a
// registered pod costs no API call.
func (r *RegistrationReconciler) owed(ctx context.Context, pod *metav1.PartialObjectMetadata, current *unstructured.Unstructured) (*owedEntry, string, error) {
	switch {
	case pod == nil:
		return nil, "the pod was deleted", nil
	case pod.DeletionTimestamp != nil:
		return nil, "the pod is being deleted", nil
	case pod.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected:
		return nil, "the pod is not injected", nil
	case r.isRefused(pod):
		return nil, "the pod's sidecar is not what injection renders", nil
	}
	policy := &v1alpha1.ClaudeAccessPolicy{}
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Annotations[wellknown.AnnotationPolicy]}
	if err := r.Get(ctx, key, policy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "its policy " + key.Name + " does not exist", nil
		}
		return nil, "", fmt.Errorf("failed to get policy %s: %w", key, err)
	}
	if policy.DeletionTimestamp != nil {
		return nil, "its policy is being deleted", nil
	}
	ten, err := render.Of(ctx, r.Client, pod.Namespace)
	if err != nil {
		return nil, "", err
	}
	if ten.Tenant == nil {
		return nil, "no single ClaudeTenant selects namespace " + pod.Namespace, nil
	}
	rendered, err := r.renderedConfig(ctx, policy)
	if err != nil || rendered == nil || rendered.Identity.TrustDomain == "" {
		return nil, "its policy renders no SPIFFE trust domain", err
	}
	td, plan := rendered.Identity.TrustDomain, inject.PlanFor(rendered, r.Inject)
	if current != nil && spireentry.Current(current, r.Entries, td) {
		return &owedEntry{entry: current, policy: policy, plan: plan}, "", nil
	}
	full := &corev1.Pod{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(pod), full); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "the pod was deleted", nil
		}
		return nil, "", fmt.Errorf("failed to read pod %s: %w", key.Namespace+"/"+pod.Name, err)
	}
	if full.UID != pod.UID || full.Spec.NodeName == "" {
		// Recreated under the same name, or not scheduled yet: its next event brings it back.
		return nil, "the pod is not scheduled yet", nil
	}
	node := &metav1.PartialObjectMetadata{}
	node.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: full.Spec.NodeName}, node); err != nil {
		return nil, "", fmt.Errorf("failed to get node %s of pod %s/%s: %w", full.Spec.NodeName, pod.Namespace, pod.Name, err)
	}
	image := ""
	if i := slices.IndexFunc(full.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == wellknown.SidecarContainerName }); i >= 0 {
		image = full.Spec.InitContainers[i].Image
	}
	e := spireentry.Entry(r.Entries, spireentry.Pod{
		Namespace: pod.Namespace, Name: pod.Name, ServiceAccount: full.Spec.ServiceAccountName,
		UID: pod.UID, NodeUID: node.UID, Image: image, Policy: policy.Name, TrustDomain: td,
	})
	return &owedEntry{entry: e, policy: policy, plan: plan, full: full}, "", nil
}

// renderedConfig reads the policy's rendered config, the document its sidecars obey: its trust domain
// (the tenant's or the operator's default, or none when the controller rendered deny-all) and what the
// sidecar mounts. nil when the controller has not written it yet.
func (r *RegistrationReconciler) renderedConfig(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy) (*policyconfig.Config, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: wellknown.ConfigMapName(p.Name)}, cm); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	cfg, err := policyconfig.Decode([]byte(cm.Data[wellknown.ConfigKey]))
	if err != nil {
		return nil, fmt.Errorf("failed to decode the rendered config of policy %s/%s: %w", p.Namespace, p.Name, err)
	}
	return cfg, nil
}

// register verifies the stored pod's sidecar and, if it is the webhook's, writes its entry.
func (r *RegistrationReconciler) register(ctx context.Context, pod *metav1.PartialObjectMetadata, o *owedEntry) error {
	if err := inject.Verify(o.full, o.policy, o.plan, r.Inject); err != nil {
		r.refuse(pod)
		r.Recorder.Eventf(o.full, nil, corev1.EventTypeWarning, v1alpha1.ReasonSidecarNotVerified, "Register",
			"No SPIFFE ID for this pod: %v", err)
		ctrl.LoggerFrom(ctx).Info("Refused a SPIFFE ID to a pod whose sidecar is not the webhook's", "reason", err.Error())
		return nil
	}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.entry), FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to apply SPIRE entry %s: %w", o.entry.GetName(), err)
	}
	r.Recorder.Eventf(o.full, nil, corev1.EventTypeNormal, v1alpha1.ReasonRegistered, "Register",
		"SPIRE entry %s gives the sidecar %s", o.entry.GetName(), specString(o.entry, "spiffeID"))
	return nil
}

func specString(u *unstructured.Unstructured, field string) string {
	s, _, _ := unstructured.NestedString(u.Object, "spec", field)
	return s
}

// entriesOf lists the entries written for the pod called key (any UID).
func (r *RegistrationReconciler) entriesOf(ctx context.Context, key types.NamespacedName) ([]unstructured.Unstructured, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(spireentry.GVK.GroupVersion().WithKind(spireentry.GVK.Kind + "List"))
	if err := r.List(ctx, list, client.MatchingLabels{
		"app.kubernetes.io/managed-by": wellknown.ManagedBy,
		spireentry.LabelPodNamespace:   key.Namespace,
	}); err != nil {
		return nil, fmt.Errorf("failed to list the SPIRE entries of pod %s: %w", key, err)
	}
	return slices.DeleteFunc(list.Items, func(e unstructured.Unstructured) bool {
		return e.GetAnnotations()[spireentry.AnnotationPodName] != key.Name
	}), nil
}

func (r *RegistrationReconciler) isRefused(pod *metav1.PartialObjectMetadata) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	uid, ok := r.refused[client.ObjectKeyFromObject(pod)]
	return ok && uid == pod.UID
}

func (r *RegistrationReconciler) refuse(pod *metav1.PartialObjectMetadata) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused == nil {
		r.refused = map[types.NamespacedName]types.UID{}
	}
	r.refused[client.ObjectKeyFromObject(pod)] = pod.UID
}

func (r *RegistrationReconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.refused, key)
}
