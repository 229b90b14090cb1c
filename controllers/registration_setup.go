package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/spireentry"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// defaultCRDPoll is RegistrationReconciler.CRDPoll's default.
const defaultCRDPoll = 20 * time.Second

// SetupRegistration registers the SPIFFE registration controller once the cluster serves
// ClusterStaticEntry. SPIRE may be installed after claude-guard: until its CRDs exist the manager runs
// without registering anything and says so in its log, then starts the controller without a restart.
func SetupRegistration(mgr ctrl.Manager, r *RegistrationReconciler) error {
	if servesEntries(mgr.GetRESTMapper()) {
		return r.SetupWithManager(mgr)
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		log := ctrl.Log.WithName("spire-registration")
		poll := r.CRDPoll
		if poll == 0 {
			poll = defaultCRDPoll
		}
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			log.Error(nil, "The cluster does not serve "+spireentry.GVK.GroupKind().String()+": no injected pod gets a SPIFFE ID until the SPIRE Controller Manager's CRDs are installed (docs/install.md)")
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			if servesEntries(mgr.GetRESTMapper()) {
				log.Info("The cluster serves " + spireentry.GVK.GroupKind().String() + ": starting SPIFFE registration")
				return r.SetupWithManager(mgr)
			}
		}
	}))
}

func servesEntries(m meta.RESTMapper) bool {
	_, err := m.RESTMapping(spireentry.GVK.GroupKind(), spireentry.GVK.Version)
	return err == nil
}

// SetupWithManager registers the reconciler and its watches: pods that were injected (metadata only),
// the entries it wrote, and the policies, rendered configs, tenants and namespaces an entry depends on.
func (r *RegistrationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	entry := &unstructured.Unstructured{}
	entry.SetGroupVersionKind(spireentry.GVK)
	return ctrl.NewControllerManagedBy(mgr).
		Named("spire-registration").
		WatchesMetadata(&corev1.Pod{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(injectedPod{})).
		Watches(entry, handler.EnqueueRequestsFromMapFunc(podOfEntry)).
		Watches(&v1alpha1.ClaudeAccessPolicy{}, handler.EnqueueRequestsFromMapFunc(r.podsOfPolicy)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.podsOfConfigMap)).
		Watches(&v1alpha1.ClaudeTenant{}, handler.EnqueueRequestsFromMapFunc(r.allInjectedPods),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deleting{}))).
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.podsInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Complete(r)
}

// injectedPod passes events of pods the webhook says it injected (before or after an update): every
// update, since a pod's scheduling changes neither its labels nor its annotations.
type injectedPod struct{ predicate.Funcs }

func isInjected(o client.Object) bool {
	return o.GetAnnotations()[wellknown.AnnotationStatus] == wellknown.StatusInjected
}

func (injectedPod) Create(e event.CreateEvent) bool   { return isInjected(e.Object) }
func (injectedPod) Delete(e event.DeleteEvent) bool   { return isInjected(e.Object) }
func (injectedPod) Generic(e event.GenericEvent) bool { return isInjected(e.Object) }
func (injectedPod) Update(e event.UpdateEvent) bool {
	return isInjected(e.ObjectOld) || isInjected(e.ObjectNew)
}

// podOfEntry maps an entry to the pod its labels name, so a deleted or edited entry is put back and an
// entry whose pod is gone is removed (also at start-up, when every entry is listed).
func podOfEntry(_ context.Context, o client.Object) []reconcile.Request {
	l, name := o.GetLabels(), o.GetAnnotations()[spireentry.AnnotationPodName]
	if l["app.kubernetes.io/managed-by"] != wellknown.ManagedBy || name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[spireentry.LabelPodNamespace], Name: name}}}
}

// injectedPods lists the injected pods matching opts, keeping those keep accepts.
func (r *RegistrationReconciler) injectedPods(ctx context.Context, keep func(*metav1.PartialObjectMetadata) bool, opts ...client.ListOption) []reconcile.Request {
	pods, err := listPods(ctx, r.Client, opts...)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list pods for a watch event")
		return nil
	}
	var out []reconcile.Request
	for i := range pods {
		p := &pods[i]
		if isInjected(p) && (keep == nil || keep(p)) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		}
	}
	return out
}

func (r *RegistrationReconciler) podsOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	return r.injectedPods(ctx, func(p *metav1.PartialObjectMetadata) bool {
		return p.Annotations[wellknown.AnnotationPolicy] == o.GetName()
	}, client.InNamespace(o.GetNamespace()))
}

func (r *RegistrationReconciler) podsOfConfigMap(ctx context.Context, o client.Object) []reconcile.Request {
	policy := o.GetLabels()[wellknown.LabelPolicy]
	if policy == "" {
		return nil
	}
	return r.injectedPods(ctx, func(p *metav1.PartialObjectMetadata) bool {
		return p.Annotations[wellknown.AnnotationPolicy] == policy
	}, client.InNamespace(o.GetNamespace()))
}

func (r *RegistrationReconciler) podsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.injectedPods(ctx, nil, client.InNamespace(o.GetName()))
}

// allInjectedPods answers a tenant change: rare, and its old and new namespaces both matter.
func (r *RegistrationReconciler) allInjectedPods(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.injectedPods(ctx, nil)
}
