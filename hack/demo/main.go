// Command demo runs claude-guard end to end on this machine with nothing but Go: a real local control
// plane (etcd + kube-apiserver built by hack/envtest.sh), the Helm chart installed into it with helm, the
// manager binary run with the release's arguments, and the sample tenant and policies applied with
// kubectl. It prints what a platform team and a tenant would see, then keeps the
// control plane up until interrupted (or exits at once with -exit).
//
//	make demo            # or: go run ./hack/demo
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/internal/chartenv"
	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/podrun"
	"github.com/claude-guard/claude-guard/internal/testenv"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/fakeupstream"
)

func main() {
	exit := flag.Bool("exit", false, "exit after the demo instead of waiting for Ctrl-C")
	flag.Parse()
	if err := run(*exit); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

type demo struct {
	root, dir, kubectl, kubeconfig string
	restConfig                     *rest.Config
}

func run(exitAfter bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{root: testenv.RepoRoot()}
	var err error
	if d.dir, err = os.MkdirTemp("", "claude-guard-demo-"); err != nil {
		return err
	}
	defer os.RemoveAll(d.dir)

	step("Building the manager and the sidecar")
	manager, sidecar := filepath.Join(d.dir, "manager"), filepath.Join(d.dir, "sidecar")
	if err := d.sh(ctx, "go", "build", "-o", manager, "./cmd/manager"); err != nil {
		return err
	}
	if err := d.sh(ctx, "go", "build", "-o", sidecar, "./cmd/sidecar"); err != nil {
		return err
	}

	step("Starting a local stand-in for api.anthropic.com (this machine has no internet)")
	fake := fakeupstream.New(demoKey)
	fake.Record = true
	upstream := httptest.NewServer(fake)
	defer upstream.Close()
	fmt.Printf("    %s\n", upstream.URL)

	step("Starting a local control plane (etcd + kube-apiserver)")
	// No CRDs and no webhook configuration yet: the chart installs them. Webhook Services are reached
	// through their EndpointSlices, as there is no kube-proxy.
	env, err := testenv.Start(chartenv.WithoutCRDs, chartenv.WithServiceRouting)
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	d.restConfig = env.Config
	if d.kubeconfig, err = env.KubeconfigFile(d.dir); err != nil {
		return err
	}
	if d.kubectl, err = testenv.Kubectl(); err != nil {
		return err
	}

	step("Platform team: install the chart (the CRDs, RBAC, the manager Deployment, the injection webhook)")
	helm, err := chartenv.NewHelm(d.kubeconfig, filepath.Join(d.dir, "helm"))
	if err != nil {
		return err
	}
	release := &chartenv.Release{Helm: helm, Name: "claude-guard", Namespace: "claude-guard-system"}
	values := []string{"--set", "upstream=" + upstream.URL, "--set", "vault.address=https://vault.example:8200"}
	fmt.Printf("$ helm install claude-guard charts/claude-guard --namespace claude-guard-system --create-namespace %s\n", strings.Join(values, " "))
	out, err := release.Install(values...)
	if err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("Starting the manager with the release's arguments, as its ServiceAccount (deny-by-default for namespaces no ClaudeTenant selects)")
	// There is no kubelet: the release's pod runs as a local process, with its webhook Secret copied into
	// its cert directory and an EndpointSlice routing the webhook Service to it (internal/chartenv).
	pod, err := chartenv.PrepareManager(ctx, env, release, d.dir)
	if err != nil {
		return err
	}
	probe := pod.ProbeAddr
	fmt.Printf("    manager %s\n", strings.Join(pod.Args, " "))
	mgr := exec.CommandContext(ctx, manager, append([]string{"--kubeconfig", pod.Kubeconfig}, pod.Args...)...)
	mgrLog, err := os.Create(filepath.Join(d.dir, "manager.log"))
	if err != nil {
		return err
	}
	mgr.Stdout, mgr.Stderr = mgrLog, mgrLog
	if err := mgr.Start(); err != nil {
		return fmt.Errorf("failed to start the manager: %w", err)
	}
	defer func() { _ = mgr.Process.Signal(os.Interrupt); _ = mgr.Wait() }()

	step("Platform team: a namespace for team-a and the ClaudeTenant that bounds it")
	d.show(ctx, "create", "namespace", "team-a")
	d.show(ctx, "label", "namespace", "team-a", "claudeguard.io/tenant=team-a")
	d.show(ctx, "apply", "-f", "config/samples/claudeguard_v1alpha1_claudetenant.yaml")

	step("Tenant: two policies from config/samples, applied with kubectl")
	d.show(ctx, "apply", "-f", "config/samples/claudeguard_v1alpha1_claudeaccesspolicy_minimal.yaml")
	d.show(ctx, "apply", "-f", "config/samples/claudeguard_v1alpha1_claudeaccesspolicy_tiers.yaml")

	step("Tenant: a policy asking for more than the tenant allows")
	greedy := filepath.Join(d.dir, "greedy.yaml")
	if err := os.WriteFile(greedy, []byte(greedyPolicy), 0o600); err != nil {
		return err
	}
	d.show(ctx, "apply", "-f", greedy)

	if err := d.waitReady(ctx, "chat", "assistant-tiers"); err != nil {
		return err
	}
	step("What kubectl shows")
	d.show(ctx, "get", "claudetenants")
	d.show(ctx, "get", "cap", "-A", "-o", "wide")
	d.show(ctx, "get", "cap", "greedy", "-n", "team-a", "-o", "jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{\"\\n\"}{end}")
	step("The rendered sidecar config of policy chat (ConfigMap claude-guard-chat)")
	d.show(ctx, "get", "configmap", "claude-guard-chat", "-n", "team-a", "-o", "jsonpath={.data.config\\.json}")

	if err := waitHTTP(ctx, "http://"+probe+"/readyz"); err != nil {
		return fmt.Errorf("the manager did not become ready (log: %s): %w", mgrLog.Name(), err)
	}
	if err := d.injection(ctx, sidecar, fake); err != nil {
		return err
	}

	fmt.Printf("\nThe control plane is up. In another shell:\n  export KUBECONFIG=%s\n  %s get cap -A\n  %s list -A\n", d.kubeconfig, d.kubectl, helm.Bin)
	fmt.Printf("Manager log: %s\n", mgrLog.Name())
	if exitAfter {
		return nil
	}
	fmt.Println("Press Ctrl-C to stop.")
	<-ctx.Done()
	return nil
}

// demoKey is the only key the stand-in upstream accepts; it reaches the sidecar only through a Secret.
const demoKey = "sk-ant-demo-not-a-real-key"

const greedyPolicy = `apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata:
  name: greedy
  namespace: team-a
spec:
  podSelector: {matchLabels: {app: batch}}
  credentials:
    vault: {authMethod: cert, role: team-a, path: anthropic}
  models:
    allow: ["claude-*"]
    maxTokens: [{model: "claude-*", limit: 500000}]
`

// injection creates a pod, shows what the webhook injected, runs the stored pod's sidecar container as
// a local process (there is no kubelet here) and calls Claude through it with the official SDK.
func (d *demo) injection(ctx context.Context, sidecarBin string, fake *fakeupstream.Server) error {
	step("A second tenant, shop: a tenant without SPIFFE, a Secret with the API key, a policy for its storefront app")
	// A tenant without SPIFFE (this demo starts no SPIRE agent): test/vault runs the SPIFFE + Vault path.
	storefront, storefrontPod := testenv.Storefront(demoKey)
	if err := d.apply(ctx, "storefront.yaml", storefront); err != nil {
		return err
	}
	if err := d.waitReadyIn(ctx, "shop", "storefront"); err != nil {
		return err
	}
	step("Tenant: create a pod; the webhook injects the sidecar")
	var podObj corev1.Pod
	if err := yaml.Unmarshal([]byte(storefrontPod), &podObj); err != nil {
		return err
	}
	c, err := client.New(d.restConfig, client.Options{})
	if err != nil {
		return err
	}
	// As in a cluster, the API server reaches a new webhook endpoint only once its informer has it.
	if err := chartenv.WaitForInjection(ctx, c, &podObj, 30*time.Second); err != nil {
		return err
	}
	if err := d.apply(ctx, "storefront-pod.yaml", storefrontPod, "create"); err != nil {
		return err
	}
	d.show(ctx, "get", "pod", "storefront", "-n", "shop", "-o", `jsonpath=annotations: {.metadata.annotations}{"\n"}init containers: {.spec.initContainers[*].name} (restartPolicy {.spec.initContainers[0].restartPolicy}){"\n"}app env: {.spec.containers[0].env}{"\n"}`)
	out, err := exec.CommandContext(ctx, d.kubectl, "--kubeconfig", d.kubeconfig, "get", "pod", "storefront", "-n", "shop", "-o", "json").Output()
	if err != nil {
		return fmt.Errorf("failed to read the stored pod: %w", err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		return err
	}

	step("Running the stored pod's sidecar container as a local process (the kubelet's part)")
	var logs bytes.Buffer
	runner := &podrun.Runner{Client: c, Root: filepath.Join(d.dir, "pod"), Binaries: map[string]string{inject.DefaultConfig().Command[0]: sidecarBin}, Output: &logs}
	proc, err := runner.Start(ctx, &pod, wellknown.SidecarContainerName)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, logs.String())
	}
	fmt.Printf("    %s %s\n", sidecarBin, strings.Join(proc.Args, " "))

	step("The app calls Claude with the official Anthropic Go SDK, configured from its injected environment")
	appEnv := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		appEnv[e.Name] = e.Value
	}
	sdk := anthropic.NewClient(option.WithBaseURL(appEnv[wellknown.EnvBaseURL]), option.WithAPIKey(appEnv[wellknown.EnvAPIKey]), option.WithMaxRetries(0))
	for _, model := range []string{"claude-haiku-4-5", "claude-opus-4-1"} {
		msg, err := sdk.Messages.New(ctx, anthropic.MessageNewParams{Model: model, MaxTokens: 4000,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))}})
		if err != nil {
			fmt.Printf("    %s -> %v\n", model, err)
			continue
		}
		fmt.Printf("    %s -> %d %q (usage: %d in, %d out)\n", model, 200, msg.Content[0].Text, msg.Usage.InputTokens, msg.Usage.OutputTokens)
	}
	_ = proc.Stop()
	for _, r := range fake.Requests() {
		fmt.Printf("    upstream saw %s %s with the Secret's key: %v, body %s\n", r.Method, r.Path, r.Header.Get("x-api-key") == demoKey, clip(string(r.Body), 90))
	}
	step("The sidecar's audit records (one JSON line per request; never the prompt or the key)")
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"decision"`) {
			fmt.Println("    " + line)
		}
	}
	return nil
}

// apply writes doc to a file and runs `kubectl apply -f` (or the verb given) on it.
func (d *demo) apply(ctx context.Context, name, doc string, verb ...string) error {
	f := filepath.Join(d.dir, name)
	if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
		return err
	}
	v := "apply"
	if len(verb) > 0 {
		v = verb[0]
	}
	d.show(ctx, v, "-f", f)
	return nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200", url)
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func (d *demo) sh(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = d.root, os.Stdout, os.Stderr
	return cmd.Run()
}

// show runs kubectl, echoing the command as a user would type it.
func (d *demo) show(ctx context.Context, args ...string) {
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, d.kubectl, append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Dir, cmd.Stdout, cmd.Stderr = d.root, &out, &out
	_ = cmd.Run()
	fmt.Print(indent(out.String()))
}

func (d *demo) waitReady(ctx context.Context, names ...string) error {
	return d.waitReadyIn(ctx, "team-a", names...)
}

func (d *demo) waitReadyIn(ctx context.Context, namespace string, names ...string) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range names {
		for {
			cmd := exec.CommandContext(ctx, d.kubectl, "--kubeconfig", d.kubeconfig, "get", "cap", n, "-n", namespace,
				"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			out, _ := cmd.Output()
			if string(out) == "True" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("policy %s did not become Ready", n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}
