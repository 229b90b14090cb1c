// Package controllers holds the reconcilers of claude-guard: one for ClaudeTenant, one for
// ClaudeAccessPolicy. The policy reconciler turns each policy, narrowed by its tenant, into the rendered
// sidecar config that injected sidecars hot-reload.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/conditions"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/render"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Finalizer lets the policy reconciler remove the rendered config before the policy disappears.
const Finalizer = "claudeguard.io/cleanup"

// eventActionReconcile is the action of the events the reconcilers record.
const eventActionReconcile = "Reconcile"

// PolicyReconciler reconciles ClaudeAccessPolicy objects into rendered sidecar configs.
type PolicyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Options  effective.Options
	// APIReader and SidecarConfig find sidecars that still enforce an older rendered config (nil: not
	// checked). Pods are read uncached: the manager caches pod metadata only.
	APIReader     client.Reader
	SidecarConfig SidecarConfigReader
	renders       renders
}

// +kubebuilder:rbac:groups=claudeguard.io,resources=claudeaccesspolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=claudeguard.io,resources=claudeaccesspolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=claudeguard.io,resources=claudeaccesspolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=get;list;watch

// Reconcile brings one policy's rendered config and status up to date.
func (r *PolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &v1alpha1.ClaudeAccessPolicy{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, p)
	}
	if !controllerutil.ContainsFinalizer(p, Finalizer) {
		patch := client.MergeFrom(p.DeepCopy())
		controllerutil.AddFinalizer(p, Finalizer)
		if err := r.Patch(ctx, p, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("failed to add finalizer: %w", err)
		}
	}
	orig := p.DeepCopy()
	again, err := r.reconcileNormal(ctx, p)
	if err == nil {
		p.Status.ObservedGeneration = p.Generation
	}
	var res ctrl.Result
	if !again.IsZero() {
		// A revocation expires: the config drops it then (a second late, so it has).
		res.RequeueAfter = time.Until(again) + time.Second
	}
	if pc := p.Status.Pods; pc != nil && pc.StaleConfig > 0 && (res.RequeueAfter == 0 || res.RequeueAfter > staleRecheck) {
		// Nothing else changes when the kubelet refreshes the pods' ConfigMaps: look again.
		res.RequeueAfter = staleRecheck
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Reason == v1alpha1.ReasonSidecarVolumeUnavailable && res.RequeueAfter == 0 {
		// No event says that a blocked pod started (its Secret was created): look again.
		res.RequeueAfter = mountFailureRecheck
	}
	return res, errors.Join(err, r.patchStatus(ctx, orig, p))
}

func (r *PolicyReconciler) reconcileDelete(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy) error {
	if !controllerutil.ContainsFinalizer(p, Finalizer) {
		return nil
	}
	if err := deleteConfigMap(ctx, r.Client, p); err != nil {
		return err
	}
	r.renders.forget(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
	patch := client.MergeFrom(p.DeepCopy())
	controllerutil.RemoveFinalizer(p, Finalizer)
	if err := r.Patch(ctx, p, patch); err != nil {
		return fmt.Errorf("failed to remove finalizer: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("Removed rendered config of deleted policy")
	return nil
}

// reconcileNormal renders and writes p's config and updates its status. It returns when the config
// changes by itself (render.Result.RenderAgainAt).
func (r *PolicyReconciler) reconcileNormal(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy) (time.Time, error) {
	res, err := render.Policy(ctx, r.Client, p, r.Options)
	if err != nil {
		return time.Time{}, r.renderFailed(p, err)
	}
	rendered := renderedConfigMap{name: wellknown.ConfigMapName(p.Name), hash: res.Hash, data: res.Data}
	replaced, err := configWriter{Client: r.Client, live: r.APIReader}.apply(ctx, p, rendered)
	if err != nil {
		return time.Time{}, r.renderFailed(p, err)
	}
	p.Status.Tenant = res.Tenant
	p.Status.Models = effective.ModelsSummary(p)
	ref := &v1alpha1.RenderedConfigRef{Name: rendered.name, Hash: rendered.hash}
	if old := p.Status.RenderedConfig; old != nil {
		ref.ReplacedForeign = old.ReplacedForeign
	}
	if replaced != "" {
		ref.ReplacedForeign = &v1alpha1.ForeignConfig{Time: metav1.Now(), Reason: replaced}
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, v1alpha1.ReasonReplacedForeignConfig, eventActionReconcile,
			"ConfigMap %s existed and was not claude-guard's (%s): replaced with the rendered config", rendered.name, replaced)
	}
	p.Status.RenderedConfig = ref
	pods, err := listPodMetadata(ctx, r.Client, p.Namespace)
	if err != nil {
		return time.Time{}, err
	}
	var blocked []mountFailure
	if len(res.Violations) == 0 {
		// Only an admitted policy's pods are worth the look: Ready already says why the others fail.
		if blocked, err = r.mountFailures(ctx, p, pods, time.Now()); err != nil {
			return time.Time{}, err
		}
	}
	r.setReady(p, res.Violations, res.Config, blocked)
	setDegraded(p, res)
	p.Status.Effective = nil
	if len(res.Violations) == 0 {
		p.Status.Effective = effective.Summary(res.Config)
	}
	return res.RenderAgainAt, r.updatePods(ctx, p, pods)
}

// renderFailed records in Ready that the config could not be rendered or written, and returns err for
// a retry. status.renderedConfig keeps naming the last config written, which the webhook keeps mounting
// for new pods; a policy never rendered has none, and its pods are refused.
func (r *PolicyReconciler) renderFailed(p *v1alpha1.ClaudeAccessPolicy, err error) error {
	conditions.Set(p, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonRenderFailed,
		Message: "The sidecar config could not be rendered or written (retrying): " + err.Error()})
	return err
}

// setReady records whether the policy is admitted, and why not, in the Ready condition.
// An admitted policy whose injected pods cannot start (blocked: their sidecar's volumes do not mount) is
// not Ready either, with the kubelet's reason and the fix.
func (r *PolicyReconciler) setReady(p *v1alpha1.ClaudeAccessPolicy, vs []effective.Violation, cfg *policyconfig.Config, blocked []mountFailure) {
	cond := metav1.Condition{Type: v1alpha1.ConditionReady}
	switch {
	case len(vs) == 0 && len(blocked) > 0:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.ReasonSidecarVolumeUnavailable, mountFailureMessage(p, blocked)
	case len(vs) == 0:
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonAdmitted
		cond.Message = fmt.Sprintf("Rendered into ConfigMap %s (models: %s)", p.Status.RenderedConfig.Name, strings.Join(cfg.Models.Allow, ", "))
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, vs[0].Reason
		cond.Message = effective.Messages(vs) + "; selected pods are denied every request until this is fixed"
	}
	conditions.Set(p, cond)
}

// setDegraded reports, on an admitted policy, what does not take effect as written (effective.Warnings):
// the tenant admin cannot read the rendered config, so this is where they learn of it. A policy that is
// not admitted has no Degraded condition: Ready says why nothing applies.
func setDegraded(p *v1alpha1.ClaudeAccessPolicy, res render.Result) {
	if len(res.Violations) > 0 {
		meta.RemoveStatusCondition(&p.Status.Conditions, v1alpha1.ConditionDegraded)
		return
	}
	cond := metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonAsWritten,
		Message: "Every rule takes effect as written"}
	if ws := res.Warnings; len(ws) > 0 {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, ws[0].Reason, effective.Messages(ws)
	}
	conditions.Set(p, cond)
}

func (r *PolicyReconciler) updatePods(ctx context.Context, p *v1alpha1.ClaudeAccessPolicy, pods []metav1.PartialObjectMetadata) error {
	var siblings v1alpha1.ClaudeAccessPolicyList
	if err := r.List(ctx, &siblings, client.InNamespace(p.Namespace)); err != nil {
		return fmt.Errorf("failed to list policies in %s: %w", p.Namespace, err)
	}
	view, err := viewPods(p, siblings.Items, pods)
	if err != nil {
		// The selector: reconcileNormal already refused it (Ready=False, InvalidSelector). No counts.
		p.Status.Pods = nil
		return nil
	}
	var prev v1alpha1.PodCounts
	if p.Status.Pods != nil {
		prev = *p.Status.Pods
	}
	if view.counts.StaleConfig, view.counts.SidecarsChecked, view.counts.StaleConfigExample, err = r.staleConfig(ctx, p, prev); err != nil {
		return err
	}
	p.Status.Pods = &view.counts
	cond := metav1.Condition{Type: v1alpha1.ConditionConflict, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNoConflict,
		Message: "No other policy in this namespace selects the same pods"}
	if len(view.overlaps) > 0 {
		parts := make([]string, 0, len(view.overlaps))
		for _, name := range sortedKeys(view.overlaps) {
			parts = append(parts, fmt.Sprintf("%s (e.g. pod %s)", name, view.overlaps[name]))
		}
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonOverlappingPolicy
		cond.Message = fmt.Sprintf("%d selected pod(s) are also selected by ClaudeAccessPolicy %s; the oldest policy applies to a pod selected by several",
			view.counts.Conflicting, strings.Join(parts, ", "))
	}
	conditions.Set(p, cond)
	return nil
}

// patchStatus writes the status if it changed and emits an event for every condition that changed.
func (r *PolicyReconciler) patchStatus(ctx context.Context, orig, p *v1alpha1.ClaudeAccessPolicy) error {
	wrote, err := patchStatus(ctx, r.Client, r.Recorder, orig, p, !equality.Semantic.DeepEqual(orig.Status, p.Status))
	if !wrote {
		return err
	}
	if orig.Status.RenderedConfig == nil || orig.Status.RenderedConfig.Hash != p.Status.RenderedConfig.Hash {
		ctrl.LoggerFrom(ctx).Info("Rendered sidecar config", "configMap", p.Status.RenderedConfig.Name, "hash", p.Status.RenderedConfig.Hash)
	}
	return nil
}

// emitConditionEvents records an event for every condition that changed. A condition is healthy when
// it is True for Ready and False for any other type (they report problems); unhealthy ones are warnings.
// A healthy condition seen for the first time is not news and gets no event.
func emitConditionEvents(rec events.EventRecorder, obj runtime.Object, before, after []metav1.Condition) {
	for _, c := range after {
		healthy := (c.Status == metav1.ConditionTrue) == (c.Type == v1alpha1.ConditionReady)
		old := meta.FindStatusCondition(before, c.Type)
		if old == nil && healthy && c.Type != v1alpha1.ConditionReady {
			continue
		}
		if old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			continue
		}
		eventType := corev1.EventTypeNormal
		if !healthy {
			eventType = corev1.EventTypeWarning
		}
		rec.Eventf(obj, nil, eventType, c.Reason, eventActionReconcile, "%s", c.Message)
	}
}
