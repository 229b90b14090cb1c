//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/spireentry"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// registrationInject and registrationEntries are what the suite's registration controller runs with.
var (
	registrationInject  = inject.DefaultConfig()
	registrationEntries = spireentry.Options{ClusterName: "test-cluster"}
)

const registrationTD = "registration.test"

// registrationWorld is a tenant namespace with a SPIFFE trust domain, a policy and a node.
type registrationWorld struct {
	// c reads the world's objects (default: the suite's client).
	c      client.Client
	ns     string
	policy *v1alpha1.ClaudeAccessPolicy
	node   *corev1.Node
}

func newRegistrationWorld(t *testing.T) *registrationWorld {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("reg-%d", time.Now().UnixNano()%1e9)
	w := &registrationWorld{c: k, ns: newNamespace(t, name, map[string]string{"tenant": name})}
	create(t, newTenant(name, func(tn *v1alpha1.ClaudeTenant) {
		tn.Spec.SPIFFE = &v1alpha1.TenantSPIFFE{TrustDomain: registrationTD}
	}))
	w.policy = newPolicy(w.ns, "chat")
	create(t, w.policy)
	w.node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name + "-node"}}
	create(t, w.node)
	wait.For(t, 20*time.Second, "", func() error {
		return k.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: wellknown.ConfigMapName("chat")}, &corev1.ConfigMap{})
	})
	if err := k.Get(ctx, client.ObjectKeyFromObject(w.policy), w.policy); err != nil {
		t.Fatal(err)
	}
	return w
}

// injectedPod is what the webhook writes for a chat pod, scheduled on the world's node.
func (w *registrationWorld) injectedPod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns, Labels: map[string]string{"app": "chat"}},
		Spec: corev1.PodSpec{NodeName: w.node.Name, ServiceAccountName: "default",
			Containers: []corev1.Container{{Name: "app", Image: "registry.test/chat:1"}}},
	}
	cm := &corev1.ConfigMap{}
	if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: w.ns, Name: wellknown.ConfigMapName(w.policy.Name)}, cm); err != nil {
		t.Fatal(err)
	}
	rendered, err := policyconfig.Decode([]byte(cm.Data[wellknown.ConfigKey]))
	if err != nil {
		t.Fatal(err)
	}
	if r := inject.Apply(pod, w.policy, inject.PlanFor(rendered, registrationInject), registrationInject); r.Outcome != inject.Injected {
		t.Fatalf("Apply: %+v", r)
	}
	return pod
}

func entryOf(ctx context.Context, pod *corev1.Pod) (*unstructured.Unstructured, error) {
	e := &unstructured.Unstructured{}
	e.SetGroupVersionKind(spireentry.GVK)
	return e, k.Get(ctx, client.ObjectKey{Name: spireentry.Name(pod.UID)}, e)
}

// TestRegistrationFollowsPods: an injected pod gets exactly the entry spireentry builds (its node's
// agent as parent, its pod UID, the sidecar's name and image), a deleted entry comes back, and the entry
// goes with the pod.
func TestRegistrationFollowsPods(t *testing.T) {
	ctx := context.Background()
	w := newRegistrationWorld(t)
	pod := w.injectedPod(t, "chat-1")
	create(t, pod)
	var e *unstructured.Unstructured
	wait.For(t, 20*time.Second, "", func() (err error) { e, err = entryOf(ctx, pod); return err })
	want := spireentry.Entry(registrationEntries, spireentry.Pod{
		Namespace: w.ns, Name: pod.Name, ServiceAccount: "default", UID: pod.UID, NodeUID: w.node.UID,
		Image: registrationInject.Image, Policy: "chat", TrustDomain: registrationTD,
	})
	if !spireentry.SameSpec(e, want) {
		t.Fatalf("entry spec %v, want %v", e.Object["spec"], want.Object["spec"])
	}
	if !strings.Contains(fmt.Sprint(e.Object["spec"]), "/spire/agent/k8s_psat/test-cluster/"+string(w.node.UID)) {
		t.Errorf("parent is not the node's agent: %v", e.Object["spec"])
	}

	if err := k.Delete(ctx, e); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "", func() error {
		got, err := entryOf(ctx, pod)
		if err == nil && got.GetUID() == e.GetUID() {
			return fmt.Errorf("the deleted entry is still there")
		}
		return err
	})

	// An entry edited by hand is written again (the pod's own status churn alone reads nothing).
	edited, err := entryOf(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedStringSlice(edited.Object, []string{"k8s:ns:" + w.ns}, "spec", "selectors"); err != nil {
		t.Fatal(err)
	}
	if err := k.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the edited entry written again", func() error {
		got, err := entryOf(ctx, pod)
		if err != nil {
			return err
		}
		if !spireentry.SameSpec(got, want) {
			return fmt.Errorf("entry spec %v", got.Object["spec"])
		}
		return nil
	})

	if err := k.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "", func() error {
		if _, err := entryOf(ctx, pod); client.IgnoreNotFound(err) != nil || err == nil {
			return fmt.Errorf("entry still there (err %w)", err)
		}
		return nil
	})
}

// TestRegistrationRefusesForgedSidecars: pods that carry the webhook's annotations and a container
// named like the sidecar, but differ from what injection renders in one security-relevant way, get no
// entry and a Warning event naming what differs.
func TestRegistrationRefusesForgedSidecars(t *testing.T) {
	ctx := context.Background()
	w := newRegistrationWorld(t)
	cases := []struct {
		name  string
		forge func(*corev1.Pod)
		want  string
	}{
		{"extra argument", func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Args = append(p.Spec.InitContainers[0].Args, "--listen=127.0.0.1:8788")
		}, "field args"},
		{"other image", func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "registry.test/not-the-sidecar:1" }, "field image"},
		{"lifecycle hook", func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/true"}}}}
		}, "field lifecycle"},
		{"exec probe", func(p *corev1.Pod) {
			p.Spec.InitContainers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/true"}}}}
		}, "field livenessProbe"},
		{"extra environment", func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Env = append(p.Spec.InitContainers[0].Env, corev1.EnvVar{Name: "GODEBUG", Value: "x"})
		}, "field env"},
		{"another config", func(p *corev1.Pod) {
			for i := range p.Spec.Volumes {
				if cm := p.Spec.Volumes[i].ConfigMap; cm != nil {
					cm.Name = "tenant-written-config"
				}
			}
		}, "volume " + inject.VolumeConfig},
		{"root", func(p *corev1.Pod) {
			sc := p.Spec.InitContainers[0].SecurityContext
			sc.RunAsUser, sc.RunAsNonRoot = new(int64), nil
		}, "field securityContext"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := w.injectedPod(t, fmt.Sprintf("forged-%d", i))
			tc.forge(pod)
			create(t, pod)
			wait.For(t, 20*time.Second, "", func() error {
				msg, err := eventFor(ctx, pod, v1alpha1.ReasonSidecarNotVerified)
				if err != nil {
					return err
				}
				if !strings.Contains(msg, tc.want) {
					t.Fatalf("event %q does not name %q", msg, tc.want)
				}
				return nil
			})
			if _, err := entryOf(ctx, pod); client.IgnoreNotFound(err) != nil || err == nil {
				t.Fatalf("a forged sidecar got an entry (err %v)", err)
			}
		})
	}
	// A pod the webhook wrote, in the same world, is registered: the refusals were about the forgeries.
	// It carries the API token mount the ServiceAccount admission plugin adds to every container.
	pod := w.injectedPod(t, "genuine")
	withServiceAccountMount(pod, serviceAccountVolume())
	create(t, pod)
	wait.For(t, 20*time.Second, "", func() error { _, err := entryOf(ctx, pod); return err })
}

// TestRegistrationRefusesLookalikeTokenMount: a volume named and mounted like the API token but holding
// something else is a difference, not the plugin's mount.
func TestRegistrationRefusesLookalikeTokenMount(t *testing.T) {
	ctx := context.Background()
	w := newRegistrationWorld(t)
	pod := w.injectedPod(t, "lookalike")
	withServiceAccountMount(pod, corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "tenant-token"}}})
	create(t, pod)
	wait.For(t, 20*time.Second, "", func() error {
		msg, err := eventFor(ctx, pod, v1alpha1.ReasonSidecarNotVerified)
		if err == nil && !strings.Contains(msg, "field volumeMounts") {
			t.Fatalf("event %q does not name volumeMounts", msg)
		}
		return err
	})
}

// serviceAccountVolume is what the ServiceAccount admission plugin adds.
func serviceAccountVolume() corev1.VolumeSource {
	return corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
		{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
		{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
			Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
		{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
	}}}
}

// withServiceAccountMount adds src as volume kube-api-access-test, mounted into every container at the
// API token's path, as the ServiceAccount admission plugin does.
func withServiceAccountMount(pod *corev1.Pod, src corev1.VolumeSource) {
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "kube-api-access-test", VolumeSource: src})
	m := corev1.VolumeMount{Name: "kube-api-access-test", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}
	for i := range pod.Spec.InitContainers {
		pod.Spec.InitContainers[i].VolumeMounts = append(pod.Spec.InitContainers[i].VolumeMounts, m)
	}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = append(pod.Spec.Containers[i].VolumeMounts, m)
	}
}

// TestRegistrationFollowsPolicyAndTenant: deleting the policy or the tenant removes the entry; putting
// them back brings it back.
func TestRegistrationFollowsPolicyAndTenant(t *testing.T) {
	ctx := context.Background()
	w := newRegistrationWorld(t)
	pod := w.injectedPod(t, "chat-1")
	create(t, pod)
	present := func(want bool) func() error {
		return func() error {
			_, err := entryOf(ctx, pod)
			if got := err == nil; got != want {
				return fmt.Errorf("entry present=%v, want %v (err %w)", got, want, err)
			}
			return client.IgnoreNotFound(err)
		}
	}
	wait.For(t, 20*time.Second, "", present(true))

	if err := k.Delete(ctx, w.policy); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "", present(false))
	p := newPolicy(w.ns, "chat")
	create(t, p)
	wait.For(t, 20*time.Second, "", present(true))

	tn := &v1alpha1.ClaudeTenant{}
	tn.Name = strings.TrimSuffix(w.node.Name, "-node")
	if err := k.Delete(ctx, tn); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "", present(false))
}

// eventFor returns the note of the newest event with reason about obj.
func eventFor(ctx context.Context, obj client.Object, reason string) (string, error) {
	var list eventsv1.EventList
	if err := k.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return "", err
	}
	for _, e := range list.Items {
		if e.Regarding.Name == obj.GetName() && e.Reason == reason {
			return e.Note, nil
		}
	}
	return "", fmt.Errorf("no %s event for %s", reason, obj.GetName())
}

// TestRegistrationStartsWhenTheCRDsAppear: a manager started before the SPIRE Controller Manager's CRDs
// exist registers pods once they are installed, without a restart.
func TestRegistrationStartsWhenTheCRDsAppear(t *testing.T) {
	ctx := context.Background()
	env, err := testenv.Start() // without the SPIRE CRDs
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	c := env.Client
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective:    effective.Options{NoTenant: effective.NoTenantDeny, VaultAddress: "https://vault.test:8200", Upstream: "https://api.anthropic.com"},
		Registration: &controllers.RegistrationReconciler{Inject: registrationInject, Entries: registrationEntries, CRDPoll: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop() }()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "late-crds", Labels: map[string]string{"tenant": "late"}}}
	tn := newTenant("late", func(tn *v1alpha1.ClaudeTenant) { tn.Spec.SPIFFE = &v1alpha1.TenantSPIFFE{TrustDomain: registrationTD} })
	p := newPolicy(ns.Name, "chat")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "late-node"}}
	for _, o := range []client.Object{ns, tn, p, node} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, 20*time.Second, "the policy's rendered config", func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: wellknown.ConfigMapName("chat")}, &corev1.ConfigMap{})
	})
	w := &registrationWorld{c: c, ns: ns.Name, policy: p, node: node}
	pod := w.injectedPod(t, "chat-1")
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}

	dir, err := testservers.SPIREDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join(dir, "crds")}}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "the pod's entry after the CRDs appeared", func() error {
		e := &unstructured.Unstructured{}
		e.SetGroupVersionKind(spireentry.GVK)
		return c.Get(ctx, client.ObjectKey{Name: spireentry.Name(pod.UID)}, e)
	})
}
