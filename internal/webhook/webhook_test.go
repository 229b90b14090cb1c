//go:build integration

package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

const operatorNamespace = "claude-guard-system"

var k client.Client

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	env, err := testenv.Start(testenv.WithWebhooks)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k = env.Client
	stop, err := env.StartManager(testenv.ManagerOptions{
		Effective: effective.Options{NoTenant: effective.NoTenantAllow, Upstream: "https://api.anthropic.com"},
		Inject:    &inject.Operator{Namespace: operatorNamespace, Config: inject.DefaultConfig()},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = stop() }()
	return m.Run()
}

func namespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
	if err := k.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := k.Create(context.Background(), ns); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
}

func policy(t *testing.T, ns, name string, selector map[string]string) *v1alpha1.ClaudeAccessPolicy {
	t.Helper()
	p := &v1alpha1.ClaudeAccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ClaudeAccessPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selector},
			Credentials: v1alpha1.CredentialSource{SecretRef: &v1alpha1.SecretKeyRef{Name: "anthropic", Key: "api-key"}},
			Models:      v1alpha1.ModelPolicy{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
		},
	}
	if err := k.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	waitRendered(t, p)
	return p
}

// waitRendered waits until the controller has rendered p's current spec: the webhook refuses the pods
// of a policy whose status vouches for no config yet.
func waitRendered(t *testing.T, p *v1alpha1.ClaudeAccessPolicy) {
	t.Helper()
	wait.For(t, 30*time.Second, "ClaudeAccessPolicy "+p.Namespace+"/"+p.Name+" rendered", func() error {
		got := &v1alpha1.ClaudeAccessPolicy{}
		if err := k.Get(context.Background(), client.ObjectKeyFromObject(p), got); err != nil {
			return err
		}
		if got.Status.RenderedConfig == nil || got.Status.ObservedGeneration != got.Generation {
			return errors.New("not rendered yet")
		}
		return nil
	})
}

// createPod creates a pod through the API server (so through the webhook) and returns what was stored.
func createPod(t *testing.T, ns, name string, labels map[string]string, mut ...func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
	}
	for _, m := range mut {
		m(pod)
	}
	if err := k.Create(context.Background(), pod); err != nil {
		t.Fatalf("failed to create pod %s/%s: %v", ns, name, err)
	}
	stored := &corev1.Pod{}
	if err := k.Get(context.Background(), client.ObjectKeyFromObject(pod), stored); err != nil {
		t.Fatal(err)
	}
	return stored
}

func sidecarOf(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == wellknown.SidecarContainerName {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestPolicySelectedPodIsInjected(t *testing.T) {
	ns := namespace(t, "inject", nil)
	policy(t, ns, "chat", map[string]string{"app": "chat"})
	pod := createPod(t, ns, "chat-0", map[string]string{"app": "chat"})

	sc := sidecarOf(pod)
	if sc == nil {
		t.Fatalf("stored pod has no sidecar: %+v", pod.Spec.InitContainers)
	}
	if pod.Spec.InitContainers[0].Name != wellknown.SidecarContainerName || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar must be the first init container with restartPolicy Always: %+v", pod.Spec.InitContainers)
	}
	if sc.StartupProbe == nil || sc.SecurityContext == nil || !*sc.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("sidecar lacks startup probe or hardened security context")
	}
	if v, _ := env(pod.Spec.Containers[0], wellknown.EnvBaseURL); v != "http://127.0.0.1:8787" {
		t.Errorf("app %s = %q", wellknown.EnvBaseURL, v)
	}
	if pod.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected || pod.Annotations[wellknown.AnnotationPolicy] != "chat" {
		t.Errorf("annotations = %v", pod.Annotations)
	}
	var secretVol, configVol bool
	for _, v := range pod.Spec.Volumes {
		secretVol = secretVol || (v.Secret != nil && v.Secret.SecretName == "anthropic")
		configVol = configVol || (v.ConfigMap != nil && v.ConfigMap.Name == wellknown.ConfigMapName("chat"))
	}
	if !secretVol || !configVol {
		t.Errorf("volumes = %+v", pod.Spec.Volumes)
	}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if strings.HasPrefix(m.Name, "claude-guard") {
			t.Errorf("app container must not mount %s", m.Name)
		}
	}
}

func TestPodsTheWebhookMustNotTouch(t *testing.T) {
	enabled := map[string]string{wellknown.LabelInject: "enabled"}
	ensureNamespace(t, operatorNamespace, map[string]string{wellknown.LabelInject: "false"})
	optedIn := namespace(t, "opted-in", enabled)
	plain := namespace(t, "plain", nil)
	policy(t, plain, "chat", map[string]string{"app": "chat"})
	policy(t, "kube-system", "chat", map[string]string{"app": "chat"})
	policy(t, operatorNamespace, "chat", map[string]string{"app": "chat"})

	cases := []struct {
		name, ns string
		labels   map[string]string
	}{
		{"kube-system", "kube-system", map[string]string{"app": "chat"}},
		{"operator namespace", operatorNamespace, map[string]string{"app": "chat"}},
		{"pod opted out", plain, map[string]string{"app": "chat", wellknown.LabelInject: "false"}},
		{"pod opted out in opted-in namespace", optedIn, map[string]string{"app": "chat", wellknown.LabelInject: "false"}},
		{"not selected", plain, map[string]string{"app": "web"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := createPod(t, c.ns, fmt.Sprintf("untouched-%d", i), c.labels)
			if sidecarOf(pod) != nil || len(pod.Annotations) != 0 || len(pod.Spec.Containers[0].Env) != 0 {
				t.Fatalf("pod was modified: annotations=%v init=%d env=%v", pod.Annotations, len(pod.Spec.InitContainers), pod.Spec.Containers[0].Env)
			}
		})
	}
}

func TestSkippedPodsAreExplained(t *testing.T) {
	optedIn := namespace(t, "skip", map[string]string{wellknown.LabelInject: "enabled"})
	p := policy(t, optedIn, "chat", map[string]string{"app": "chat"})
	owner := func(pod *corev1.Pod) {
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "chat-abc", UID: "8f5e2f3a-0000-4000-8000-000000000001", Controller: ptr.To(true)}}
	}
	hostNet := createPod(t, optedIn, "host", map[string]string{"app": "chat"}, owner, func(pod *corev1.Pod) { pod.Spec.HostNetwork = true })
	if sidecarOf(hostNet) != nil || !strings.HasPrefix(hostNet.Annotations[wellknown.AnnotationStatus], "skipped: hostNetwork pods") {
		t.Fatalf("hostNetwork pod: annotations=%v", hostNet.Annotations)
	}
	noPolicy := createPod(t, optedIn, "stray", map[string]string{"app": "web"})
	if want := "skipped: namespace " + optedIn + " asks for injection but no ClaudeAccessPolicy there selects this pod"; noPolicy.Annotations[wellknown.AnnotationStatus] != want {
		t.Fatalf("status = %q, want %q", noPolicy.Annotations[wellknown.AnnotationStatus], want)
	}
	wait.For(t, 10*time.Second, "", func() error {
		var list eventsv1.EventList
		if err := k.List(context.Background(), &list, client.InNamespace(optedIn)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "ReplicaSet" && e.Regarding.Name == "chat-abc" && e.Reason == "InjectionSkipped" && strings.Contains(e.Note, "hostNetwork") {
				return nil
			}
		}
		return fmt.Errorf("no InjectionSkipped event on the owner among %d events", len(list.Items))
	})
	// The policy's status explains the pod that runs without its sidecar.
	wait.For(t, 10*time.Second, "", func() error {
		got := &v1alpha1.ClaudeAccessPolicy{}
		if err := k.Get(context.Background(), client.ObjectKeyFromObject(p), got); err != nil {
			return err
		}
		pods := got.Status.Pods
		if pods == nil || pods.Selected != 1 || pods.NotInjected != 1 || len(pods.NotInjectedReasons) != 1 || pods.NotInjectedReasons[0].Example != "host" ||
			!strings.HasPrefix(pods.NotInjectedReasons[0].Reason, "hostNetwork pods") {
			return fmt.Errorf("pods = %+v", pods)
		}
		return nil
	})
}

func TestPolicyChangeUpdatesTheMountedConfig(t *testing.T) {
	ns := namespace(t, "update", nil)
	p := policy(t, ns, "chat", map[string]string{"app": "chat"})
	pod := createPod(t, ns, "chat-0", map[string]string{"app": "chat"})
	var cmName string
	for _, v := range pod.Spec.Volumes {
		if v.Name == inject.VolumeConfig {
			cmName = v.ConfigMap.Name
		}
	}
	read := func() (*policyconfig.Config, error) {
		cm := &corev1.ConfigMap{}
		if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: cmName}, cm); err != nil {
			return nil, err
		}
		return policyconfig.Parse([]byte(cm.Data[wellknown.ConfigKey]))
	}
	wait.For(t, 10*time.Second, "", func() error {
		c, err := read()
		if err != nil {
			return err
		}
		if len(c.Models.Allow) != 1 || c.Models.Allow[0] != "claude-haiku-*" {
			return fmt.Errorf("models = %v", c.Models.Allow)
		}
		return nil
	})
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Models.Allow = []v1alpha1.ModelPattern{"claude-sonnet-*"}
	if err := k.Patch(context.Background(), p, patch); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "", func() error {
		c, err := read()
		if err != nil {
			return err
		}
		if len(c.Models.Allow) != 1 || c.Models.Allow[0] != "claude-sonnet-*" {
			return fmt.Errorf("models = %v", c.Models.Allow)
		}
		return nil
	})
	wait.For(t, 10*time.Second, "", func() error {
		got := &v1alpha1.ClaudeAccessPolicy{}
		if err := k.Get(context.Background(), client.ObjectKeyFromObject(p), got); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("ready = %+v", c)
		}
		if got.Status.Pods == nil || got.Status.Pods.Injected != 1 {
			return fmt.Errorf("pods = %+v", got.Status.Pods)
		}
		return nil
	})
}

// TestMountsFollowTheRenderedConfig: the webhook mounts what the policy's rendered config uses. A
// policy that names a Secret its tenant does not allow is not admitted and renders deny-all, so its
// sidecar gets no Secret mounted, though the spec names one; an admitted one gets it.
func TestMountsFollowTheRenderedConfig(t *testing.T) {
	ctx := context.Background()
	vaultOnly := namespace(t, "vault-only", nil)
	if err := k.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: vaultOnly, Labels: map[string]string{"tenant": vaultOnly}}}, client.Merge); err != nil {
		t.Fatal(err)
	}
	tenant := &v1alpha1.ClaudeTenant{
		ObjectMeta: metav1.ObjectMeta{Name: vaultOnly},
		Spec: v1alpha1.ClaudeTenantSpec{
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"tenant": vaultOnly}},
			Models:            v1alpha1.TenantModels{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
			Credentials:       v1alpha1.TenantCredentials{Vault: &v1alpha1.TenantVault{PathPrefix: "tenants/" + vaultOnly, Roles: []string{"team"}}},
		},
	}
	if err := k.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Delete(ctx, tenant) })
	open := namespace(t, "no-tenant", nil)
	for _, c := range []struct {
		ns        string
		wantMount bool
	}{{vaultOnly, false}, {open, true}} {
		policy(t, c.ns, "chat", map[string]string{"app": "chat"})
		// The webhook's cache must see the tenant before the pod is created.
		var pod *corev1.Pod
		wait.For(t, 10*time.Second, "the webhook to render with the tenant", func() error {
			pod = createPod(t, c.ns, fmt.Sprintf("chat-%d", time.Now().UnixNano()), map[string]string{"app": "chat"})
			if got := hasVolume(pod, inject.VolumeSecret); got != c.wantMount {
				return fmt.Errorf("namespace %s: Secret volume mounted = %v, want %v", c.ns, got, c.wantMount)
			}
			return nil
		})
		hasArg := strings.Contains(strings.Join(sidecarOf(pod).Args, " "), "--secret-dir=")
		if hasArg != c.wantMount {
			t.Fatalf("namespace %s: --secret-dir in the sidecar's args = %v, want %v", c.ns, hasArg, c.wantMount)
		}
		// This operator sets no SPIFFE trust domain and the tenant none either: no CSI volume, which a
		// cluster without the SPIFFE CSI driver could never mount.
		if hasVolume(pod, inject.VolumeSPIFFE) {
			t.Fatalf("namespace %s: the pod got the SPIFFE volume without a trust domain", c.ns)
		}
	}
}

func hasVolume(pod *corev1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// TestSkipEventsPerPodAndNoneInDryRun: two bare pods of one policy skipped for different reasons get
// an event each with their own message (the recorder would fold them into the first one's series
// otherwise), and a server-side dry run records no event, as the webhook declares no side effects.
func TestSkipEventsPerPodAndNoneInDryRun(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "skip-events", nil)
	policy(t, ns, "chat", map[string]string{"app": "chat"})
	port := func(pod *corev1.Pod) {
		pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: inject.DefaultConfig().Port}}
	}
	dry := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dry", Labels: map[string]string{"app": "chat"}},
		Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}}}
	if err := k.Create(ctx, dry, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	createPod(t, ns, "host", map[string]string{"app": "chat"}, func(pod *corev1.Pod) { pod.Spec.HostNetwork = true })
	createPod(t, ns, "clash", map[string]string{"app": "chat"}, port)
	want := map[string]string{"host": "hostNetwork pods", "clash": "uses port"}
	wait.For(t, 10*time.Second, "an event per skipped pod", func() error {
		var list eventsv1.EventList
		if err := k.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range list.Items {
			if e.Reason != v1alpha1.ReasonInjectionSkipped {
				continue
			}
			if strings.Contains(e.Note, "Pod dry ") {
				t.Fatalf("a dry-run pod recorded an event: %s", e.Note)
			}
			for pod, text := range want {
				if e.Related != nil && e.Related.Name == pod && strings.Contains(e.Note, "Pod "+pod+" ") && strings.Contains(e.Note, text) {
					seen[pod] = true
				}
			}
		}
		if len(seen) != len(want) {
			return fmt.Errorf("events for %v, want one for each of %v", seen, want)
		}
		return nil
	})
}

// TestLookAlikeSidecarsAreRefused, through the API server with the chart's webhook configuration: a
// pod declaring the sidecar's container, or running its image under another name, is refused in every
// namespace and whatever its labels (the reserved entry sees pods the other entries skip); the pod the
// webhook injected passes the same check, which the API server runs on it after injection, and the
// namespace's other pods are untouched.
func TestLookAlikeSidecarsAreRefused(t *testing.T) {
	ns := namespace(t, "lookalike", nil)
	policy(t, ns, "chat", map[string]string{"app": "chat"})
	image := inject.DefaultConfig().Image
	fake := func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{{Name: wellknown.SidecarContainerName, Image: image, Args: []string{"--upstream=https://attacker.example"}}}
	}
	cases := []struct {
		name   string
		labels map[string]string
		mut    func(*corev1.Pod)
		want   string
	}{
		{"a hand-written sidecar in a selected pod", map[string]string{"app": "chat"}, fake,
			"spec.initContainers[0]: the name claude-guard-sidecar is reserved for the sidecar claude-guard injects"},
		{"a hand-written sidecar in an opted-out pod", map[string]string{"app": "chat", wellknown.LabelInject: "false"}, fake,
			"spec.initContainers[0]: the name claude-guard-sidecar is reserved"},
		{"a hand-written sidecar in a pod no policy selects", map[string]string{"app": "web"}, fake,
			"spec.initContainers[0]: the name claude-guard-sidecar is reserved"},
		{"the sidecar image under another name", map[string]string{"app": "web", wellknown.LabelInject: "false"}, func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "helper", Image: image})
		}, "spec.containers[1].image: container helper runs " + image},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("lookalike-%d", i), Labels: tc.labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}}}
			tc.mut(pod)
			err := k.Create(context.Background(), pod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want refused with %q, got %v", tc.want, err)
			}
		})
	}
	if pod := createPod(t, ns, "chat-0", map[string]string{"app": "chat"}); sidecarOf(pod) == nil {
		t.Errorf("the selected pod was not injected")
	}
	if pod := createPod(t, ns, "web-0", map[string]string{"app": "web"}); len(pod.Spec.InitContainers) != 0 {
		t.Errorf("a pod no policy selects was changed: %v", pod.Spec.InitContainers)
	}
}

// TestOnlyAVouchedConfigIsMounted: a ConfigMap planted under a policy's name before the policy exists
// (immutable, so no apply can change it; or unlabelled, with a config of the planter's) is replaced by
// the controller, which says so in status, and no pod ever mounts it; while the controller cannot write
// the config at all (here an admission policy refuses its writes, on every retry), the policy's status
// says why and the webhook refuses the policy's pods instead of mounting whatever is there.
func TestOnlyAVouchedConfigIsMounted(t *testing.T) {
	ctx := context.Background()
	planted := `{"apiVersion":"sidecar.claudeguard.io/v1","kind":"SidecarConfig","server":{"upstream":"https://attacker.example"},"credentials":{"secret":{"name":"anthropic","key":"api-key"}},"models":{"allow":["*"]}}`
	for _, tc := range []struct {
		name      string
		immutable bool
		want      string
	}{
		{"immutable", true, "it has no controller reference to this policy"},
		{"unlabelled", false, "it has no controller reference to this policy"},
	} {
		t.Run("planted "+tc.name, func(t *testing.T) {
			ns := namespace(t, "planted", nil)
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: wellknown.ConfigMapName("chat")},
				Data: map[string]string{wellknown.ConfigKey: planted}, Immutable: ptr.To(tc.immutable)}
			if err := k.Create(ctx, cm); err != nil {
				t.Fatal(err)
			}
			p := policy(t, ns, "chat", map[string]string{"app": "chat"})
			if err := k.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				t.Fatal(err)
			}
			if rf := p.Status.RenderedConfig.ReplacedForeign; rf == nil || !strings.Contains(rf.Reason, tc.want) {
				t.Errorf("status.renderedConfig.replacedForeign = %+v, want a reason with %q", rf, tc.want)
			}
			if err := k.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(cm.Data[wellknown.ConfigKey], "attacker.example") || cm.UID == "" || ptr.Deref(cm.Immutable, false) {
				t.Errorf("the planted ConfigMap survived: %+v", cm)
			}
			if pod := createPod(t, ns, "chat-0", map[string]string{"app": "chat"}); sidecarOf(pod) == nil {
				t.Errorf("the policy's pod was not injected after the takeover")
			}
		})
	}

	t.Run("the controller cannot write", func(t *testing.T) {
		ns := namespace(t, "unwritable", nil)
		refuseConfigWrites(t, ns)
		p := &v1alpha1.ClaudeAccessPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"},
			Spec: v1alpha1.ClaudeAccessPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat"}},
				Credentials: v1alpha1.CredentialSource{SecretRef: &v1alpha1.SecretKeyRef{Name: "anthropic", Key: "api-key"}},
				Models:      v1alpha1.ModelPolicy{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
			},
		}
		if err := k.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		wait.For(t, 30*time.Second, "Ready=False, RenderFailed", func() error {
			if err := k.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Reason != v1alpha1.ReasonRenderFailed || !strings.Contains(c.Message, "no config writes here") {
				return fmt.Errorf("Ready = %+v", c)
			}
			return nil
		})
		if p.Status.RenderedConfig != nil {
			t.Errorf("status.renderedConfig = %+v, want none", p.Status.RenderedConfig)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat-0", Labels: map[string]string{"app": "chat"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}}}
		err := k.Create(ctx, pod)
		const want = "ClaudeAccessPolicy " + "%s/chat selects this pod, and its config cannot be used: it has not been rendered yet"
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(want, ns)) {
			t.Fatalf("want the pod refused with %q, got %v", fmt.Sprintf(want, ns), err)
		}
	})
}

// refuseConfigWrites makes the API server refuse every write of a ConfigMap in ns, the manager's too.
func refuseConfigWrites(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	name := "refuse-configmaps-" + ns
	vap := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "request.namespace != '" + ns + "'", Message: "no config writes here"}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	for _, o := range []client.Object{vap, binding} {
		if err := k.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k.Delete(ctx, o) })
	}
	// The API server loads admission policies asynchronously.
	wait.For(t, 30*time.Second, "the API server to refuse ConfigMaps in "+ns, func() error {
		probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}}
		if err := k.Create(ctx, probe, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "no config writes here") {
			return fmt.Errorf("not yet: %w", err)
		}
		return nil
	})
}
