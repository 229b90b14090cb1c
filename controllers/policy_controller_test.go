//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

const reconcileWait = 10 * time.Second

// readyIs waits until the policy's Ready condition has status and reason for the current generation,
// and returns the policy.
func readyIs(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *v1alpha1.ClaudeAccessPolicy {
	t.Helper()
	p := &v1alpha1.ClaudeAccessPolicy{}
	wait.For(t, reconcileWait, "", func() error {
		if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		switch {
		case c == nil:
			return fmt.Errorf("no Ready condition")
		case c.ObservedGeneration != p.Generation || p.Status.ObservedGeneration != p.Generation:
			return fmt.Errorf("status is for generation %d/%d, object is at %d", c.ObservedGeneration, p.Status.ObservedGeneration, p.Generation)
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("Ready=%s reason=%s message=%q", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	return p
}

// renderedConfig reads and parses a policy's rendered ConfigMap.
func renderedConfig(t *testing.T, ns, policy string) (*corev1.ConfigMap, *policyconfig.Config) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: wellknown.ConfigMapName(policy)}, cm); err != nil {
		t.Fatalf("rendered ConfigMap: %v", err)
	}
	cfg, err := policyconfig.Parse([]byte(cm.Data[wellknown.ConfigKey]))
	if err != nil {
		t.Fatalf("rendered config does not parse: %v", err)
	}
	return cm, cfg
}

func TestAdmittedPolicyIsRendered(t *testing.T) {
	ns := newNamespace(t, "render-ok", map[string]string{"tenant": "render"})
	create(t, newTenant("render"))
	create(t, newPolicy(ns, "chat", withModels("claude-haiku-*", "claude-sonnet-4-5")))

	p := readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
	cm, cfg := renderedConfig(t, ns, "chat")

	if cfg.Deny != nil {
		t.Fatalf("admitted policy rendered a deny: %+v", cfg.Deny)
	}
	if got, want := cfg.Credentials.Vault.Path, "tenants/render/anthropic"; got != want {
		t.Errorf("vault path = %q, want %q", got, want)
	}
	if got := cfg.Credentials.Vault.Address; got != "https://vault.test:8200" {
		t.Errorf("vault address = %q", got)
	}
	if cfg.Policy.Name != "chat" || cfg.Policy.Tenant != "render" || cfg.Policy.Generation != p.Generation {
		t.Errorf("policy ref = %+v", cfg.Policy)
	}
	if p.Status.RenderedConfig == nil || p.Status.RenderedConfig.Hash != cm.Annotations[wellknown.AnnotationConfigHash] ||
		p.Status.RenderedConfig.Hash != policyconfig.Hash([]byte(cm.Data[wellknown.ConfigKey])) {
		t.Errorf("status hash %+v does not match ConfigMap annotation %q", p.Status.RenderedConfig, cm.Annotations[wellknown.AnnotationConfigHash])
	}
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != p.UID {
		t.Errorf("ConfigMap owner references = %+v", cm.OwnerReferences)
	}
	if p.Status.Tenant != "render" || p.Status.Models != "claude-haiku-*,claude-sonnet-4-5" {
		t.Errorf("status tenant=%q models=%q", p.Status.Tenant, p.Status.Models)
	}
	// A tenant admin reads the tenant's ceiling in the policy's own status.
	e := p.Status.Effective
	wantCeiling := v1alpha1.EffectiveCeiling{Model: "*", Limit: 8192, Action: "Reject", Source: "tenant"}
	if e == nil || len(e.MaxTokens) == 0 || e.MaxTokens[len(e.MaxTokens)-1] != wantCeiling || e.LimitsBackend != "Local" ||
		strings.Join(e.Models, ",") != "claude-haiku-*,claude-sonnet-4-5" {
		t.Errorf("status.effective = %+v, want the models, Local counting and the tenant's ceiling %+v last", e, wantCeiling)
	}
}

func TestPolicyExceedingTenantIsNotRendered(t *testing.T) {
	ns := newNamespace(t, "exceed", map[string]string{"tenant": "exceed"})
	create(t, newTenant("exceed"))
	create(t, newPolicy(ns, "greedy", withModels("claude-haiku-*", "claude-opus-*")))

	p := readyIs(t, ns, "greedy", metav1.ConditionFalse, "ExceedsTenantCeiling")
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
	want := `spec.models.allow[1] "claude-opus-*" is not allowed by ClaudeTenant exceed (it allows claude-haiku-*, claude-sonnet-*); selected pods are denied every request until this is fixed`
	if c.Message != want {
		t.Errorf("message\n got: %s\nwant: %s", c.Message, want)
	}
	if p.Status.Effective != nil {
		t.Errorf("a policy that is not admitted shows an effective policy: %+v", p.Status.Effective)
	}
	_, cfg := renderedConfig(t, ns, "greedy")
	if cfg.Deny == nil || len(cfg.Models.Allow) != 0 || cfg.Credentials.Vault != nil {
		t.Fatalf("policy beyond its tenant must render deny-all with no credential, got %+v", cfg)
	}
	// Callers learn the reason and where to look; the tenant and its ceilings stay in status.
	if want := "ClaudeAccessPolicy " + ns + "/greedy is not admitted (ExceedsTenantCeiling)"; !strings.Contains(cfg.Deny.Reason, want) || strings.Contains(cfg.Deny.Reason, "ClaudeTenant exceed") {
		t.Errorf("deny reason = %q, want %q and no tenant name", cfg.Deny.Reason, want)
	}
	wait.For(t, reconcileWait, "", func() error { return hasEvent(ns, "greedy", corev1.EventTypeWarning, "ExceedsTenantCeiling") })
}

func TestNoTenantDeniesByDefault(t *testing.T) {
	ns := newNamespace(t, "untenanted", nil)
	create(t, newPolicy(ns, "chat"))
	p := readyIs(t, ns, "chat", metav1.ConditionFalse, "NoTenant")
	if msg := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "namespace "+ns+" is not selected by any ClaudeTenant") {
		t.Errorf("message = %q", msg)
	}
	_, cfg := renderedConfig(t, ns, "chat")
	if cfg.Deny == nil {
		t.Fatal("expected a deny-all config")
	}
}

func TestTenantAndNamespaceChangesRerender(t *testing.T) {
	ns := newNamespace(t, "follow", nil)
	create(t, newPolicy(ns, "chat", withModels("claude-sonnet-*")))
	readyIs(t, ns, "chat", metav1.ConditionFalse, "NoTenant")

	tenant := newTenant("follow")
	create(t, tenant)
	// Labelling the namespace puts it under the tenant: the namespace watch must notice.
	nsObj := &corev1.Namespace{}
	if err := k.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(nsObj.DeepCopy())
	nsObj.Labels = map[string]string{"tenant": "follow"}
	if err := k.Patch(context.Background(), nsObj, patch); err != nil {
		t.Fatal(err)
	}
	readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)

	// The tenant narrows its ceiling: the tenant watch must re-render the policy, fail closed.
	tpatch := client.MergeFrom(tenant.DeepCopy())
	tenant.Spec.Models.Allow = []v1alpha1.ModelPattern{"claude-haiku-*"}
	if err := k.Patch(context.Background(), tenant, tpatch); err != nil {
		t.Fatal(err)
	}
	readyIs(t, ns, "chat", metav1.ConditionFalse, "ExceedsTenantCeiling")
	_, cfg := renderedConfig(t, ns, "chat")
	if cfg.Deny == nil {
		t.Fatal("narrowed tenant must turn the rendered config into deny-all")
	}

	// The tenant stops selecting the namespace: found through status.tenant even though it no longer matches.
	tpatch = client.MergeFrom(tenant.DeepCopy())
	tenant.Spec.NamespaceSelector = metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "someone-else"}}
	if err := k.Patch(context.Background(), tenant, tpatch); err != nil {
		t.Fatal(err)
	}
	readyIs(t, ns, "chat", metav1.ConditionFalse, "NoTenant")
}

func TestTwoTenantsSelectingANamespace(t *testing.T) {
	ns := newNamespace(t, "contested", map[string]string{"tenant": "contest-a", "also": "contest-b"})
	create(t, newTenant("contest-a"))
	create(t, newTenant("contest-b", func(t *v1alpha1.ClaudeTenant) {
		t.Spec.NamespaceSelector = metav1.LabelSelector{MatchLabels: map[string]string{"also": "contest-b"}}
	}))
	create(t, newPolicy(ns, "chat"))
	p := readyIs(t, ns, "chat", metav1.ConditionFalse, "TenantConflict")
	if msg := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady).Message; strings.Contains(msg, "contest-b") {
		t.Errorf("a policy's status must not name other tenants: %q", msg)
	}
	tn := &v1alpha1.ClaudeTenant{}
	wait.For(t, reconcileWait, "", func() error {
		if err := k.Get(context.Background(), client.ObjectKey{Name: "contest-a"}, tn); err != nil {
			return err
		}
		c := meta.FindStatusCondition(tn.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != v1alpha1.ReasonNamespaceConflict || !strings.Contains(c.Message, ns+" (also selected by contest-b)") {
			return fmt.Errorf("tenant condition %+v", c)
		}
		return nil
	})
}

func TestConflictsAndPodCounts(t *testing.T) {
	ns := newNamespace(t, "pods", map[string]string{"tenant": "pods"})
	create(t, newTenant("pods"))
	create(t, newPolicy(ns, "first", withSelector(map[string]string{"app": "chat"})))
	readyIs(t, ns, "first", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
	create(t, newPolicy(ns, "second", withSelector(map[string]string{"tier": "web"})))

	mkPod := func(name string, labels, annotations map[string]string) {
		create(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}},
		})
	}
	mkPod("injected", map[string]string{"app": "chat"}, map[string]string{wellknown.AnnotationPolicy: "first", wellknown.AnnotationStatus: wellknown.StatusInjected})
	mkPod("plain", map[string]string{"app": "chat"}, nil)
	mkPod("both", map[string]string{"app": "chat", "tier": "web"}, nil)
	mkPod("other", map[string]string{"app": "other"}, nil)

	wait.For(t, reconcileWait, "", func() error {
		p := &v1alpha1.ClaudeAccessPolicy{}
		if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "first"}, p); err != nil {
			return err
		}
		want := v1alpha1.PodCounts{Selected: 3, Injected: 1, NotInjected: 2, Conflicting: 1, NotInjectedReasons: []v1alpha1.NotInjectedReason{{
			Reason: "created before this policy selected it, or while the webhook was unreachable; recreate the pod to inject it", Pods: 2, Example: "both",
		}}}
		if p.Status.Pods == nil || !equality.Semantic.DeepEqual(*p.Status.Pods, want) {
			return fmt.Errorf("pods = %+v, want %+v", p.Status.Pods, want)
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionConflict)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "also selected by ClaudeAccessPolicy second (e.g. pod both)") {
			return fmt.Errorf("conflict condition = %+v", c)
		}
		return nil
	})
	wait.For(t, reconcileWait, "", func() error {
		return hasEvent(ns, "first", corev1.EventTypeWarning, v1alpha1.ReasonOverlappingPolicy)
	})

	// Removing the overlap clears the conflict on the sibling too.
	pod := &corev1.Pod{}
	if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "both"}, pod); err != nil {
		t.Fatal(err)
	}
	if err := k.Delete(context.Background(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, reconcileWait, "", func() error {
		p := &v1alpha1.ClaudeAccessPolicy{}
		if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "second"}, p); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionConflict); c == nil || c.Status != metav1.ConditionFalse || p.Status.Pods == nil || p.Status.Pods.Selected != 0 {
			return fmt.Errorf("second: conflict=%+v pods=%+v", c, p.Status.Pods)
		}
		return nil
	})
}

func TestDeleteRemovesRenderedConfig(t *testing.T) {
	ns := newNamespace(t, "cleanup", map[string]string{"tenant": "cleanup"})
	create(t, newTenant("cleanup"))
	p := newPolicy(ns, "chat")
	create(t, p)
	readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
	renderedConfig(t, ns, "chat")

	if err := k.Delete(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	wait.For(t, reconcileWait, "", func() error {
		err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: wellknown.ConfigMapName("chat")}, &corev1.ConfigMap{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("ConfigMap still there: %w", err)
		}
		err = k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "chat"}, &v1alpha1.ClaudeAccessPolicy{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("policy still there: %w", err)
		}
		return nil
	})
}

func TestDriftIsRepairedAndSteadyStateIsQuiet(t *testing.T) {
	ns := newNamespace(t, "steady", map[string]string{"tenant": "steady"})
	create(t, newTenant("steady"))
	create(t, newPolicy(ns, "chat"))
	readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
	cm, _ := renderedConfig(t, ns, "chat")
	want := cm.Data[wellknown.ConfigKey]

	// Someone edits the rendered config by hand: the Owns watch restores it.
	patch := client.MergeFrom(cm.DeepCopy())
	cm.Data[wellknown.ConfigKey] = `{"apiVersion":"sidecar.claudeguard.io/v1","kind":"SidecarConfig","models":{"allow":["*"]}}`
	if err := k.Patch(context.Background(), cm, patch); err != nil {
		t.Fatal(err)
	}
	wait.For(t, reconcileWait, "", func() error {
		got := &corev1.ConfigMap{}
		if err := k.Get(context.Background(), client.ObjectKeyFromObject(cm), got); err != nil {
			return err
		}
		if got.Data[wellknown.ConfigKey] != want {
			return fmt.Errorf("ConfigMap not restored yet")
		}
		return nil
	})

	// Once converged, nothing is written again: no hot loop on status updates.
	p := &v1alpha1.ClaudeAccessPolicy{}
	if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "chat"}, p); err != nil {
		t.Fatal(err)
	}
	cm, _ = renderedConfig(t, ns, "chat")
	time.Sleep(2 * time.Second)
	p2 := &v1alpha1.ClaudeAccessPolicy{}
	if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "chat"}, p2); err != nil {
		t.Fatal(err)
	}
	cm2, _ := renderedConfig(t, ns, "chat")
	if p2.ResourceVersion != p.ResourceVersion || cm2.ResourceVersion != cm.ResourceVersion {
		t.Fatalf("objects kept changing in steady state: policy %s→%s, ConfigMap %s→%s", p.ResourceVersion, p2.ResourceVersion, cm.ResourceVersion, cm2.ResourceVersion)
	}
}

func hasEvent(ns, name, eventType, reason string) error {
	var list eventsv1.EventList
	if err := k.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return err
	}
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Type == eventType && e.Reason == reason {
			return nil
		}
	}
	return fmt.Errorf("no %s event %s for %s/%s among %d events", eventType, reason, ns, name, len(list.Items))
}

// TestPodsThatCannotMountTheirSidecarVolumes: when the kubelet reports that an injected pod's sidecar
// Secret does not mount (a secretRef to a Secret that does not exist), the policy is Ready=False with the
// kubelet's cause and the fix; once the failure is old (the pod started), it is Ready again.
func TestPodsThatCannotMountTheirSidecarVolumes(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "mount", map[string]string{"tenant": "mount"})
	create(t, newTenant("mount", func(tn *v1alpha1.ClaudeTenant) {
		tn.Spec.Credentials.AllowedSources = []v1alpha1.CredentialSourceKind{v1alpha1.SourceSecretRef}
	}))
	create(t, newPolicy(ns, "chat", func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Credentials = v1alpha1.CredentialSource{SecretRef: &v1alpha1.SecretKeyRef{Name: "anthropic", Key: "api-key"}}
	}))
	readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat-1", Labels: map[string]string{"app": "chat"},
			Annotations: map[string]string{wellknown.AnnotationStatus: wellknown.StatusInjected, wellknown.AnnotationPolicy: "chat"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.test/chat:1"}}},
	}
	create(t, pod)
	// What the kubelet writes when the Secret volume cannot be set up.
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: "chat-1.failedmount"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "chat-1", UID: pod.UID, APIVersion: "v1"},
		Reason:         "FailedMount", Type: corev1.EventTypeWarning, Count: 3,
		Message:        `MountVolume.SetUp failed for volume "` + inject.VolumeSecret + `" : secret "anthropic" not found`,
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp: metav1.NewTime(time.Now().Add(-time.Minute)), LastTimestamp: metav1.Now(),
	}
	create(t, ev)
	p := readyIs(t, ns, "chat", metav1.ConditionFalse, v1alpha1.ReasonSidecarVolumeUnavailable)
	msg := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady).Message
	for _, want := range []string{`pod chat-1 cannot start`, `secret "anthropic" not found`, "create Secret anthropic with key api-key in namespace " + ns} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not say %q", msg, want)
		}
	}
	// An old failure does not count: the kubelet repeats a failing mount every couple of minutes.
	ev.LastTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
	if err := k.Update(ctx, ev); err != nil {
		t.Fatal(err)
	}
	readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
	ev.LastTimestamp, ev.Count = metav1.Now(), ev.Count+1
	if err := k.Update(ctx, ev); err != nil {
		t.Fatal(err)
	}
	readyIs(t, ns, "chat", metav1.ConditionFalse, v1alpha1.ReasonSidecarVolumeUnavailable)
	// The Secret appeared and the kubelet started the sidecar: Ready again, though the event is fresh.
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: wellknown.SidecarContainerName, Image: "sidecar",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
	if err := k.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	ev.Count++
	if err := k.Update(ctx, ev); err != nil { // a watch event, instead of waiting for the recheck
		t.Fatal(err)
	}
	readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
}

// TestTenantCeilingsNeedASharedBackend: this suite's operator has no Redis, so a tenant with a budget
// cannot have it counted in a shared backend: its policies are not admitted (NoSharedBackend, naming the
// tenant) and render deny-all, and the tenant's own Ready says why. Removing the budget admits them.
func TestTenantCeilingsNeedASharedBackend(t *testing.T) {
	ns := newNamespace(t, "unshared", map[string]string{"tenant": "unshared"})
	tenant := newTenant("unshared", func(t *v1alpha1.ClaudeTenant) {
		t.Spec.Budgets = []v1alpha1.Budget{{Name: "monthly", Window: "Month", Tokens: new(int64(1_000_000))}}
	})
	create(t, tenant)
	create(t, newPolicy(ns, "chat"))
	p := readyIs(t, ns, "chat", metav1.ConditionFalse, v1alpha1.ReasonNoSharedBackend)
	if msg := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "ClaudeTenant unshared sets limits or budgets") {
		t.Errorf("message %q does not name the tenant's ceilings", msg)
	}
	if _, cfg := renderedConfig(t, ns, "chat"); cfg.Deny == nil {
		t.Fatal("a policy whose tenant ceilings cannot be counted must render deny-all")
	}
	wait.For(t, reconcileWait, "the tenant reports NoSharedBackend", func() error {
		tn := &v1alpha1.ClaudeTenant{}
		if err := k.Get(context.Background(), client.ObjectKey{Name: "unshared"}, tn); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(tn.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse ||
			c.Reason != v1alpha1.ReasonNoSharedBackend || !strings.Contains(c.Message, "spec.limits and spec.budgets count in the operator's shared Redis") {
			return fmt.Errorf("tenant condition %+v", c)
		}
		return nil
	})
	patch := client.MergeFrom(tenant.DeepCopy())
	tenant.Spec.Budgets = nil
	if err := k.Patch(context.Background(), tenant, patch); err != nil {
		t.Fatal(err)
	}
	readyIs(t, ns, "chat", metav1.ConditionTrue, v1alpha1.ReasonAdmitted)
}
