package inject

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Set UPDATE_GOLDEN=1 to rewrite testdata/*.injected.yaml from the current code.
var updateGolden = os.Getenv("UPDATE_GOLDEN") != ""

func policy(name string, created time.Time, mut ...func(*v1alpha1.ClaudeAccessPolicy)) v1alpha1.ClaudeAccessPolicy {
	p := v1alpha1.ClaudeAccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a", CreationTimestamp: metav1.NewTime(created)},
		Spec: v1alpha1.ClaudeAccessPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat"}},
			Credentials: v1alpha1.CredentialSource{Vault: &v1alpha1.VaultCredentials{AuthMethod: v1alpha1.VaultAuthCert, Role: "team-a", Path: "anthropic"}},
			Models:      v1alpha1.ModelPolicy{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
		},
	}
	for _, m := range mut {
		m(&p)
	}
	return p
}

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func teamA(policies ...v1alpha1.ClaudeAccessPolicy) Namespace {
	return Namespace{Name: "team-a", Policies: policies}
}

// renderOptions are the operator settings the tests render policies with: no tenant needed, a Vault
// a Redis and a SPIFFE trust domain configured.
var renderOptions = effective.Options{NoTenant: effective.NoTenantAllow, VaultAddress: "https://vault.example:8200", RedisURL: "redis://redis.example:6379",
	RedisUsers: true, TrustDomain: "cluster.example"}

// testRender renders a policy as the controller does (without a tenant), deny-all when not admitted.
func testRender(p *v1alpha1.ClaudeAccessPolicy) (*policyconfig.Config, error) {
	c, vs := effective.Compute(effective.Input{Policy: p}, renderOptions)
	if len(vs) > 0 {
		return effective.Deny(p, "", vs, renderOptions), nil
	}
	return c, nil
}

func TestGolden(t *testing.T) {
	chat := policy("chat", t0)
	op := Operator{Namespace: "claude-guard-system", Config: DefaultConfig()}
	hostPathOp := op
	hostPathOp.Config.Socket, hostPathOp.Config.Image = SocketHostPath, "registry.internal/claude-guard/sidecar:v0.1.0"
	redisOp := op
	redisOp.Config.RedisPassword = true
	customOp := op
	customOp.Config.Port, customOp.Config.ImagePullPolicy = 18787, corev1.PullAlways
	customOp.Config.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	telemetryOp := op
	telemetryOp.Config.PrometheusAnnotations = true
	telemetryOp.Config.Telemetry = Telemetry{OTLPEndpoint: "http://otel-collector.observability:4318", TraceSampleRatio: "0.25", MetricExportInterval: 30 * time.Second}

	cases := []struct {
		name string
		ns   Namespace
		op   Operator
		want Outcome
	}{
		{"plain-pod", teamA(chat), op, Injected},
		{"deployment-template-pod", teamA(chat), op, Injected},
		{"job-pod", teamA(chat), op, Injected},
		{"existing-init-containers", teamA(chat), op, Injected},
		{"sets-base-url", teamA(chat), op, Injected},
		{"opted-out", teamA(chat), op, Skipped},
		{"host-network", teamA(chat), op, Skipped},
		{"port-clash", teamA(chat), op, Skipped},
		{"host-pid", teamA(chat), op, Skipped},
		{"shared-process-namespace", teamA(chat), op, Skipped},
		{"mounts-sidecar-volume", teamA(chat), op, Skipped},
		{"reinvocation", teamA(chat), op, AlreadyInjected},
		{"not-selected", teamA(chat), op, ""},
		{"namespace-enabled-no-policy", Namespace{Name: "team-a", Labels: map[string]string{"claudeguard.io/inject": "enabled"}, Policies: []v1alpha1.ClaudeAccessPolicy{chat}}, op, Skipped},
		{"namespace-disabled", Namespace{Name: "team-a", Labels: map[string]string{"claudeguard.io/inject": "disabled"}, Policies: []v1alpha1.ClaudeAccessPolicy{chat}}, op, ""},
		{"kube-system", Namespace{Name: "kube-system", Labels: map[string]string{"claudeguard.io/inject": "enabled"}, Policies: []v1alpha1.ClaudeAccessPolicy{chat}}, op, ""},
		{"secretref", teamA(policy("chat", t0, func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Credentials = v1alpha1.CredentialSource{SecretRef: &v1alpha1.SecretKeyRef{Name: "anthropic", Key: "api-key"}}
		})), op, Injected},
		{"custom-sidecar", teamA(chat), customOp, Injected},
		{"telemetry", teamA(chat), telemetryOp, Injected},
		{"own-prometheus-annotations", teamA(chat), telemetryOp, Injected},
		{"redis-limits", teamA(policy("chat", t0, func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Limits = &v1alpha1.LimitPolicy{Backend: v1alpha1.LimitBackendRedis}
		})), redisOp, Injected},
		{"vault-kubernetes-hostpath", teamA(policy("chat", t0, func(p *v1alpha1.ClaudeAccessPolicy) {
			p.Spec.Credentials.Vault.AuthMethod = v1alpha1.VaultAuthKubernetes
		})), hostPathOp, Injected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.ns.Render = testRender
			pod := readPod(t, filepath.Join("testdata", c.name+".yaml"))
			d, err := Mutate(pod, c.ns, c.op)
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != c.want {
				t.Fatalf("outcome = %q (%s), want %q", d.Outcome, d.Reason, c.want)
			}
			got := render(t, pod, d)
			golden := filepath.Join("testdata", c.name+".injected.yaml")
			if updateGolden {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("missing golden file (run with UPDATE_GOLDEN=1): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s is stale (run with UPDATE_GOLDEN=1 and review the diff); got:\n%s", golden, got)
			}

			// Re-invocation of the webhook on its own output changes nothing.
			again := pod.DeepCopy()
			if _, err := Mutate(again, c.ns, c.op); err != nil {
				t.Fatal(err)
			}
			if b := render(t, again, d); !bytes.Equal(b, got) {
				t.Fatalf("second application changed the pod:\n%s", b)
			}
		})
	}
}

func TestSelectPolicyPrefersTheOldest(t *testing.T) {
	older := policy("zeta", t0)
	newer := policy("alpha", t0.Add(time.Hour))
	sameTime := policy("beta", t0)
	if got := SelectPolicy(map[string]string{"app": "chat"}, []v1alpha1.ClaudeAccessPolicy{newer, older, sameTime}); got.Name != "beta" {
		t.Fatalf("selected %s, want beta (oldest, then by name)", got.Name)
	}
	deleting := policy("beta", t0)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	if got := SelectPolicy(map[string]string{"app": "chat"}, []v1alpha1.ClaudeAccessPolicy{newer, deleting}); got.Name != "alpha" {
		t.Fatalf("selected %s, a policy being deleted must not apply", got.Name)
	}
	if got := SelectPolicy(map[string]string{"app": "web"}, []v1alpha1.ClaudeAccessPolicy{newer}); got != nil {
		t.Fatalf("selected %s for a pod no selector matches", got.Name)
	}
}

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(b, pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pod
}

func render(t *testing.T, pod *corev1.Pod, d Decision) []byte {
	t.Helper()
	b, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	header := fmt.Sprintf("# Generated by TestGolden (UPDATE_GOLDEN=1 go test ./internal/inject). Outcome: %q", d.Outcome)
	if d.Reason != "" {
		header += fmt.Sprintf(", reason: %q", d.Reason)
	}
	return append([]byte(header+"\n"), b...)
}

// TestRedisPasswordOnlyInTheSidecar: the namespace's Redis password is mounted when the operator runs
// per-namespace users and the policy uses the Redis backend, and then only into the sidecar.
func TestRedisPasswordOnlyInTheSidecar(t *testing.T) {
	cases := []struct {
		name      string
		operator  bool
		backend   v1alpha1.LimitBackend
		noLimits  bool
		wantMount bool
	}{
		{name: "redis policy, users on", operator: true, backend: v1alpha1.LimitBackendRedis, wantMount: true},
		{name: "redis policy, users off", backend: v1alpha1.LimitBackendRedis},
		{name: "local policy, users on", operator: true, backend: v1alpha1.LimitBackendLocal},
		{name: "no limits, users on", operator: true, noLimits: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := policy("chat", t0, func(p *v1alpha1.ClaudeAccessPolicy) {
				if !c.noLimits {
					p.Spec.Limits = &v1alpha1.LimitPolicy{Backend: c.backend}
				}
			})
			cfg := DefaultConfig()
			cfg.RedisPassword = c.operator
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
			rendered, err := testRender(&p)
			if err != nil {
				t.Fatal(err)
			}
			if r := Apply(pod, &p, PlanFor(rendered, cfg), cfg); r.Outcome != Injected {
				t.Fatalf("outcome %s: %s", r.Outcome, r.Reason)
			}
			got := volume(pod.Spec.Volumes, VolumeRedis) != nil
			if got != c.wantMount {
				t.Fatalf("Redis password volume present = %v, want %v", got, c.wantMount)
			}
			for _, ctr := range pod.Spec.Containers {
				for _, m := range ctr.VolumeMounts {
					if m.Name == VolumeRedis {
						t.Fatalf("app container %s mounts the Redis password", ctr.Name)
					}
				}
			}
		})
	}
}

// TestMountsFollowTheRenderedConfig: the sidecar mounts what its rendered config uses, not what the
// policy's spec names. A policy that is not admitted renders deny-all and its sidecar gets no
// credential; a Redis policy on an operator without Redis renders the Local backend and gets no Redis
// password.
func TestMountsFollowTheRenderedConfig(t *testing.T) {
	secretRef := func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Credentials = v1alpha1.CredentialSource{SecretRef: &v1alpha1.SecretKeyRef{Name: "anthropic", Key: "api-key"}}
	}
	vaultK8s := func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Credentials.Vault.AuthMethod = v1alpha1.VaultAuthKubernetes
	}
	redis := func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Limits = &v1alpha1.LimitPolicy{Backend: v1alpha1.LimitBackendRedis}
	}
	noTenant := renderOptions
	noTenant.NoTenant = effective.NoTenantDeny
	noRedis := renderOptions
	noRedis.RedisURL, noRedis.RedisUsers = "", false
	noSPIFFE := renderOptions
	noSPIFFE.TrustDomain = ""
	brokered := renderOptions
	brokered.RedisBroker = &policyconfig.RedisBroker{URL: "https://broker:9444", ID: "spiffe://" + renderOptions.TrustDomain + "/ns/claude-guard-system/sa/m"}
	cases := []struct {
		name   string
		policy v1alpha1.ClaudeAccessPolicy
		o      effective.Options
		want   []string // the sidecar's volumes besides its config
	}{
		{"secret, admitted", policy("chat", t0, secretRef), renderOptions, []string{VolumeSecret, VolumeSPIFFE}},
		{"secret, not admitted", policy("chat", t0, secretRef), noTenant, nil},
		{"secret, no trust domain", policy("chat", t0, secretRef), noSPIFFE, []string{VolumeSecret}},
		{"vault kubernetes, admitted", policy("chat", t0, vaultK8s), renderOptions, []string{VolumeToken, VolumeSPIFFE}},
		{"vault kubernetes, not admitted", policy("chat", t0, vaultK8s), noTenant, nil},
		{"redis, operator has Redis", policy("chat", t0, redis), renderOptions, []string{VolumeRedis, VolumeSPIFFE}},
		{"redis, operator has none (rendered Local)", policy("chat", t0, redis), noRedis, []string{VolumeSPIFFE}},
		{"redis through the credential broker: no password Secret", policy("chat", t0, redis), brokered, []string{VolumeSPIFFE}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.RedisPassword = true
			rendered, vs := effective.Compute(effective.Input{Policy: &c.policy}, c.o)
			if len(vs) > 0 {
				rendered = effective.Deny(&c.policy, "", vs, c.o)
			}
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
			if r := Apply(pod, &c.policy, PlanFor(rendered, cfg), cfg); r.Outcome != Injected {
				t.Fatalf("outcome %s: %s", r.Outcome, r.Reason)
			}
			var got []string
			for _, v := range pod.Spec.Volumes {
				if v.Name != VolumeConfig {
					got = append(got, v.Name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("volumes %v, want %v", got, c.want)
			}
			args := fmt.Sprint(pod.Spec.InitContainers[0].Args)
			for flag, vol := range map[string]string{"--secret-dir=": VolumeSecret, "--vault-token-file=": VolumeToken, "--redis-password-file=": VolumeRedis} {
				if strings.Contains(args, flag) != (volume(pod.Spec.Volumes, vol) != nil) {
					t.Fatalf("args %s disagree with volume %s", args, vol)
				}
			}
			if _, ok := envOf(pod.Spec.InitContainers[0], wellknown.EnvSPIFFESocket); ok != (volume(pod.Spec.Volumes, VolumeSPIFFE) != nil) {
				t.Fatalf("%s set = %v, but the SPIFFE volume present = %v", wellknown.EnvSPIFFESocket, ok, !ok)
			}
		})
	}
}

func envOf(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// TestLookAlikesAreRefused: a pod that declares what only injection adds is refused, wherever it is
// and whatever it asks for (opted out included), and the error names the field; the webhook's own
// output seen again (re-invocation) is not.
func TestLookAlikesAreRefused(t *testing.T) {
	op := Operator{Namespace: "claude-guard-system", Config: DefaultConfig()}
	ns := teamA(policy("chat", t0))
	ns.Render = testRender
	injected := readPod(t, filepath.Join("testdata", "plain-pod.yaml"))
	if d, err := Mutate(injected, ns, op); err != nil || d.Outcome != Injected {
		t.Fatalf("setup: %v %v", d, err)
	}
	app := corev1.Container{Name: "app", Image: "example.com/chat:1.0"}
	pod := func(mut func(p *corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: "team-a", Labels: map[string]string{"app": "chat"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}
		mut(p)
		return p
	}
	tampered := func(mut func(c *corev1.Container)) *corev1.Pod {
		p := injected.DeepCopy()
		mut(&p.Spec.InitContainers[0])
		return p
	}
	own := op.Config.Image
	cases := []struct {
		name string
		pod  *corev1.Pod
		// want is the refusal's text; "" means admitted.
		want string
	}{
		{"the webhook's own output", injected.DeepCopy(), ""},
		{"an app container named like the sidecar", pod(func(p *corev1.Pod) { p.Spec.Containers[0].Name = wellknown.SidecarContainerName }),
			"spec.containers[0].name: the name claude-guard-sidecar is reserved"},
		{"a hand-written sidecar", pod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: wellknown.SidecarContainerName, Image: own, Args: []string{"--upstream=https://attacker.example"}}}
		}), "spec.initContainers[0]: the name claude-guard-sidecar is reserved for the sidecar claude-guard injects, and this container is not that sidecar"},
		{"a hand-written sidecar in an opted-out pod", pod(func(p *corev1.Pod) {
			p.Labels[wellknown.LabelInject] = "false"
			p.Spec.InitContainers = []corev1.Container{{Name: wellknown.SidecarContainerName, Image: own}}
		}), "spec.initContainers[0]: the name claude-guard-sidecar is reserved"},
		{"the injected sidecar with an argument added", tampered(func(c *corev1.Container) { c.Args = append(c.Args, "--upstream=https://attacker.example") }),
			"field args differs from what injection renders"},
		{"the injected sidecar with another image", tampered(func(c *corev1.Container) { c.Image = "example.com/printer:1" }),
			"field image differs"},
		{"the injected sidecar with an extra mount", tampered(func(c *corev1.Container) {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "host", MountPath: "/host"})
		}), "field volumeMounts differs"},
		{"the sidecar image under another name", pod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "helper", Image: own})
		}),
			"spec.containers[1].image: container helper runs " + own + ", claude-guard's sidecar image"},
		{"another tag of the sidecar image", pod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "ghcr.io/claude-guard/sidecar:latest"}}
		}), "spec.initContainers[0].image: container setup runs ghcr.io/claude-guard/sidecar:latest"},
		{"an image of a similar name", pod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "ghcr.io/claude-guard/sidecar-tools:1" }), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Mutate(tc.pod, ns, op)
			var r *Refusal
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want admitted, got %v", err)
			case tc.want != "" && (!errors.As(err, &r) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want a refusal with %q, got %v", tc.want, err)
			}
		})
	}
}

func TestSameImage(t *testing.T) {
	const d = "sha256:0123456789abcdef"
	cases := []struct {
		a, b string
		want bool
	}{
		{"ghcr.io/claude-guard/sidecar:v1", "ghcr.io/claude-guard/sidecar:v0.1.0", true},
		{"ghcr.io/claude-guard/sidecar", "ghcr.io/claude-guard/sidecar:v0.1.0", true},
		{"ghcr.io/claude-guard/sidecar@" + d, "ghcr.io/claude-guard/sidecar:v0.1.0", true},
		{"mirror.internal/copy@" + d, "ghcr.io/claude-guard/sidecar:v0.1.0@" + d, true},
		{"mirror.internal/copy:v1", "ghcr.io/claude-guard/sidecar:v0.1.0@" + d, false},
		{"registry:5000/claude-guard/sidecar", "registry:5000/claude-guard/sidecar:v1", true},
		{"registry:5000/claude-guard/sidecar-x:v1", "registry:5000/claude-guard/sidecar:v1", false},
		{"", "ghcr.io/claude-guard/sidecar:v1", false},
	}
	for _, tc := range cases {
		if got := SameImage(tc.a, tc.b); got != tc.want {
			t.Errorf("SameImage(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestTheGatewayMayRunTheSidecarImage: the chart's gateway runs the sidecar image under its own name;
// its service account's pods are let through, a pod of another service account (or another namespace)
// is not, and none may name a container like the sidecar.
func TestTheGatewayMayRunTheSidecarImage(t *testing.T) {
	op := Operator{Namespace: "claude-guard-system", Config: DefaultConfig(), Gateway: "team-a/claude-guard-gateway"}
	ns := teamA(policy("chat", t0))
	ns.Render = testRender
	gateway := func(sa, name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "team-a", Labels: map[string]string{wellknown.LabelInject: "false"}},
			Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: name, Image: op.Config.Image}}}}
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		ns   string
		want string
	}{
		{"the gateway", gateway("claude-guard-gateway", "gateway"), "team-a", ""},
		{"another service account", gateway("chat", "gateway"), "team-a", "claude-guard's sidecar image"},
		{"the gateway's name in another namespace", gateway("claude-guard-gateway", "gateway"), "team-b", "claude-guard's sidecar image"},
		{"the gateway naming a container like the sidecar", gateway("claude-guard-gateway", wellknown.SidecarContainerName), "team-a", "is reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := ns
			n.Name = tc.ns
			_, err := Mutate(tc.pod, n, op)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
