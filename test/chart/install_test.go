//go:build integration

package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/internal/managerapp"
	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/repo"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// TestInstallUpgradeUninstall installs the chart with helm into a real API server, runs the manager with
// the release's arguments as the release's ServiceAccount (so the chart's RBAC is what the API server
// enforces), and checks what a platform team relies on: a tenant's policy applied with kubectl becomes
// Ready and a new pod is injected as the values say; `helm upgrade` keeps the CRDs, the policies and the
// webhook's caBundle; `helm uninstall` removes the operator and leaves the CRDs and tenant objects.
func TestInstallUpgradeUninstall(t *testing.T) {
	env, err := testenv.Start(chartenv.WithoutCRDs, chartenv.WithServiceRouting)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	dir := t.TempDir()
	kubeconfig, err := env.KubeconfigFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := chartenv.NewHelm(kubeconfig, filepath.Join(dir, "helm"))
	if err != nil {
		t.Fatal(err)
	}
	k := kubectlFor(t, kubeconfig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Install, with values that show up in an injected pod.
	rel := &chartenv.Release{Helm: h, Name: "claude-guard", Namespace: "claude-guard-system"}
	out, err := rel.Install("--set", "sidecar.port=18787", "--set", "sidecar.image.tag=v0.1.0-test",
		"--set", "upstream=https://anthropic.internal.example")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "STATUS: deployed") || !strings.Contains(out, "kubectl -n claude-guard-system rollout status deployment/claude-guard-manager") {
		t.Errorf("helm install output lacks the status or NOTES.txt:\n%s", out)
	}
	k.run("wait", "--for=condition=Established", "crd/claudeaccesspolicies.claudeguard.io", "crd/claudetenants.claudeguard.io", "--timeout=30s")
	// docs/upgrade.md's first step: Helm never upgrades crds/, so an upgrade applies them by hand.
	if out := k.run("apply", "--server-side", "--force-conflicts", "-f", filepath.Join(chartenv.Chart(), "crds")); !strings.Contains(out, "serverside-applied") {
		t.Errorf("applying the chart's CRDs over a release: %s", out)
	}

	stopManager := runManager(ctx, t, env, rel, dir)
	pod := storefront(t, k, env.Client)
	if got := envValue(pod.Spec.Containers[0], wellknown.EnvBaseURL); got != "http://127.0.0.1:18787" {
		t.Errorf("app container's %s = %q, want the sidecar.port value", wellknown.EnvBaseURL, got)
	}
	if got := pod.Spec.InitContainers[0].Image; got != "ghcr.io/claude-guard/sidecar:v0.1.0-test" {
		t.Errorf("sidecar image = %q, want the sidecar.image values", got)
	}
	cm := k.run("get", "configmap", "claude-guard-storefront", "-n", "shop", "-o", "jsonpath={.data.config\\.json}")
	if !strings.Contains(cm, `"upstream": "https://anthropic.internal.example"`) {
		t.Errorf("rendered config does not use the upstream value:\n%s", cm)
	}
	caBundle := webhookCABundle(t, env.Client)
	configProtection(t, k, "shop", "storefront")

	// Upgrade: a new value reaches the Deployment; the CRDs, the policy, the webhook's caBundle (written
	// by the manager, not by Helm) and injection survive.
	if _, err := rel.Upgrade("--reuse-values", "--set", "sidecar.image.tag=v0.1.1-test"); err != nil {
		t.Fatal(err)
	}
	d, err := rel.Deployment()
	if err != nil {
		t.Fatal(err)
	}
	args, _ := chartenv.ManagerArgs(d)
	if v, _ := chartenv.Flag(args, "sidecar-image"); v != "ghcr.io/claude-guard/sidecar:v0.1.1-test" {
		t.Errorf("upgraded Deployment has --sidecar-image=%q", v)
	}
	if got := webhookCABundle(t, env.Client); !bytes.Equal(got, caBundle) {
		t.Error("helm upgrade changed the webhook's caBundle")
	}
	if ready := k.run("get", "cap", "storefront", "-n", "shop", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); ready != "True" {
		t.Errorf("policy after upgrade: Ready=%q", ready)
	}
	if p := createPod(t, k, "storefront-2"); p.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected {
		t.Errorf("a pod created after the upgrade was not injected: %v", p.Annotations)
	}

	// More policies, in two namespaces, for docs/uninstall.md's leftover-policies block below; the
	// manager gives each its finalizer.
	extras := leftoverPolicies(t, k)

	// Uninstall: the operator goes, the API and the tenants' objects stay.
	stopManager()
	if _, err := rel.Uninstall(); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []string{"crd/claudeaccesspolicies.claudeguard.io", "crd/claudetenants.claudeguard.io", "claudetenant/shop"} {
		k.run("get", obj)
	}
	k.run("get", "cap", "storefront", "-n", "shop")

	// docs/uninstall.md: with no manager left, a policy's deletion waits on its finalizer until it is
	// removed by hand.
	k.run("delete", "cap", "--all", "-A", "--wait=false")
	if out := k.run("get", "cap", "storefront", "-n", "shop", "-o", "jsonpath={.metadata.deletionTimestamp}"); out == "" {
		t.Error("the policy was deleted without its finalizer running")
	}
	// The docs' block, as written: it removes every finalizer left and the rendered configs. The admission
	// policy left with the release, but the API server notices a moment later: until then the block's
	// last command is refused, and the docs say to repeat it.
	block, err := repo.DocBlock("docs/uninstall.md", "leftover-policies")
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "docs/uninstall.md's leftover-policies block", func() error {
		if out, err := k.cli.Shell(block); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	for _, p := range append(extras, "shop/storefront") {
		ns, name, _ := strings.Cut(p, "/")
		k.run("wait", "--for=delete", "cap/"+name, "-n", ns, "--timeout=30s")
	}
	if out := k.run("get", "configmap", "-A", "-l", "app.kubernetes.io/managed-by=claude-guard", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("rendered configs left after the docs' block: %s", out)
	}
	for _, gone := range []string{"mutatingwebhookconfiguration/claude-guard-injector", "clusterrole/claude-guard-manager", "deployment/claude-guard-manager -n claude-guard-system",
		"validatingadmissionpolicy/claude-guard-config-protection", "validatingadmissionpolicybinding/claude-guard-config-protection"} {
		if out, err := k.try(append([]string{"get"}, strings.Fields(gone)...)...); err == nil || !strings.Contains(out, "NotFound") {
			t.Errorf("%s is still there after helm uninstall: %v %s", gone, err, out)
		}
	}
}

// runManager runs the manager in-process as the release's pod would run and waits until it is ready
// (the webhook serves with the certificate it issued itself). The returned function stops it.
func runManager(ctx context.Context, t *testing.T, env *testenv.Env, rel *chartenv.Release, dir string) func() {
	t.Helper()
	pod, err := chartenv.PrepareManager(ctx, env, rel, dir)
	if err != nil {
		t.Fatal(err)
	}
	o := managerapp.NewOptions()
	if err := o.Parse(pod.Args); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("the release's manager arguments are invalid: %v", err)
	}
	t.Setenv("KUBECONFIG", pod.Kubeconfig)
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- managerapp.Run(mctx, o) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("the manager exited: %v", err)
		default:
		}
		if code, _ := get("http://" + pod.ProbeAddr + "/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			_, body := get("http://" + pod.ProbeAddr + "/readyz?verbose")
			t.Fatalf("the manager did not become ready:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the manager exited with %v", err)
		}
	}
}

// configProtection checks the release's ValidatingAdmissionPolicy: nobody but the manager may edit a
// rendered config, not even a cluster admin; the garbage collector may delete one, and the manager,
// running as the release's ServiceAccount with the chart's RBAC, renders it again.
func configProtection(t *testing.T, k *kubectl, namespace, policy string) {
	t.Helper()
	cm := wellknown.ConfigMapName(policy)
	want := "ConfigMap " + cm + " is rendered by claude-guard from ClaudeAccessPolicy " + policy + "; edit the policy instead"
	// The API server loads admission policies asynchronously after helm install.
	wait.For(t, 30*time.Second, "", func() error {
		out, err := k.try("patch", "configmap", cm, "-n", namespace, "--dry-run=server", "-p", `{"data":{"config.json":"{}"}}`)
		if err == nil || !strings.Contains(out, want) {
			return fmt.Errorf("a cluster admin's edit of the rendered config: want refused with %q, got %w: %s", want, err, out)
		}
		return nil
	})
	uid := k.run("get", "configmap", cm, "-n", namespace, "-o", "jsonpath={.metadata.uid}")
	k.run("delete", "configmap", cm, "-n", namespace, "--as", "system:serviceaccount:kube-system:generic-garbage-collector")
	wait.For(t, 30*time.Second, "", func() error {
		if now, _ := k.try("get", "configmap", cm, "-n", namespace, "-o", "jsonpath={.metadata.uid}"); now == uid || strings.Contains(now, "NotFound") {
			return errors.New("the manager did not render the deleted config again")
		}
		return nil
	})
}

// storefront applies the shop tenant and its policy with kubectl, as a platform team and a tenant would,
// and returns its first pod as stored after admission.
func storefront(t *testing.T, k *kubectl, c client.Client) *corev1.Pod {
	t.Helper()
	setup, _ := testenv.Storefront("sk-ant-chart-test")
	k.apply(setup)
	wait.For(t, 30*time.Second, "", func() error {
		if ready := k.run("get", "cap", "storefront", "-n", "shop", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); ready != "True" {
			return errors.New("policy storefront is not Ready")
		}
		return nil
	})
	var probe corev1.Pod
	if err := yaml.Unmarshal([]byte(podDoc("probe")), &probe); err != nil {
		t.Fatal(err)
	}
	if err := chartenv.WaitForInjection(context.Background(), c, &probe, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	pod := createPod(t, k, "storefront")
	if pod.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected || len(pod.Spec.InitContainers) == 0 {
		t.Fatalf("pod was not injected: %v", pod.Annotations)
	}
	return pod
}

func createPod(t *testing.T, k *kubectl, name string) *corev1.Pod {
	t.Helper()
	k.apply(podDoc(name))
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(k.run("get", "pod", name, "-n", "shop", "-o", "json")), &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

func podDoc(name string) string {
	_, doc := testenv.Storefront("")
	return strings.Replace(doc, "name: storefront\n", "name: "+name+"\n", 1)
}

func webhookCABundle(t *testing.T, c client.Client) []byte {
	t.Helper()
	var wh admissionv1.MutatingWebhookConfiguration
	if err := c.Get(context.Background(), client.ObjectKey{Name: "claude-guard-injector"}, &wh); err != nil {
		t.Fatal(err)
	}
	if len(wh.Webhooks) != 3 || len(wh.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Fatalf("webhook configuration lacks the manager's caBundle: %+v", wh.Webhooks)
	}
	for _, w := range wh.Webhooks[1:] {
		if !bytes.Equal(w.ClientConfig.CABundle, wh.Webhooks[0].ClientConfig.CABundle) {
			t.Fatalf("webhook %s has another caBundle than %s", w.Name, wh.Webhooks[0].Name)
		}
	}
	return wh.Webhooks[0].ClientConfig.CABundle
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func get(url string) (int, string) {
	resp, err := http.Get(url) //nolint:gosec,noctx // a loopback probe in a test
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// kubectl runs the kubectl that matches the test control plane.
// leftoverPolicies copies policy shop/storefront twice into shop and once into a second namespace, waits
// until the manager has given each its finalizer, and returns them as namespace/name.
func leftoverPolicies(t *testing.T, k *kubectl) []string {
	t.Helper()
	k.run("create", "namespace", "shop-b")
	spec := k.run("get", "cap", "storefront", "-n", "shop", "-o", "jsonpath={.spec}")
	var out []string
	for _, p := range []string{"shop/storefront-a", "shop/storefront-b", "shop-b/storefront"} {
		ns, name, _ := strings.Cut(p, "/")
		k.apply(fmt.Sprintf("{\"apiVersion\": \"claudeguard.io/v1alpha1\", \"kind\": \"ClaudeAccessPolicy\", \"metadata\": {\"name\": %q, \"namespace\": %q}, \"spec\": %s}", name, ns, spec))
		out = append(out, p)
	}
	for _, p := range out {
		ns, name, _ := strings.Cut(p, "/")
		wait.For(t, 20*time.Second, "the finalizer of "+p, func() error {
			if f := k.run("get", "cap", name, "-n", ns, "-o", "jsonpath={.metadata.finalizers}"); !strings.Contains(f, "claudeguard.io/cleanup") {
				return fmt.Errorf("finalizers %q", f)
			}
			return nil
		})
	}
	return out
}

// kubectl is testenv's kubectl runner with the test's *testing.T, for the must-succeed calls.
type kubectl struct {
	t   *testing.T
	cli *testenv.KubectlCLI
}

func kubectlFor(t *testing.T, kubeconfig string) *kubectl {
	t.Helper()
	bin, err := testenv.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	return &kubectl{t: t, cli: &testenv.KubectlCLI{Path: bin, Kubeconfig: kubeconfig}}
}

func (k *kubectl) tryStdin(stdin string, args ...string) (string, error) {
	return k.cli.Run(stdin, args...)
}

func (k *kubectl) try(args ...string) (string, error) { return k.tryStdin("", args...) }

func (k *kubectl) run(args ...string) string {
	k.t.Helper()
	out, err := k.try(args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (k *kubectl) apply(doc string) {
	k.t.Helper()
	if out, err := k.tryStdin(doc, "apply", "-f", "-"); err != nil {
		k.t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}
