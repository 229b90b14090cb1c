// Command demo runs claude-guard end to end on this machine, in real pods: it builds the manager and
// sidecar images from this working tree, starts a whole local cluster (etcd, kube-apiserver, controller
// manager, scheduler, and a real node: kubelet, containerd, kube-proxy; internal/test/cluster) in a
// network namespace of its own, installs the Helm chart with helm, applies the sample tenant and
// policies with kubectl, and runs a tenant Deployment whose app calls Claude through the injected
// sidecar with the official Anthropic Go SDK (a pod plays api.anthropic.com: this machine has no
// internet). It then keeps the cluster up until interrupted (or exits at once with -exit).
//
//	make demo            # or: go run ./hack/demo   (as root: a node mounts, makes cgroups, runs containers)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/cluster"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

func main() {
	exit := flag.Bool("exit", false, "exit after the demo instead of waiting for Ctrl-C")
	flag.Parse()
	// The cluster's clients are controller-runtime's; the demo prints what kubectl shows, not their logs.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(cluster.Main(func() int {
		if err := run(*exit); err != nil {
			fmt.Fprintln(os.Stderr, "demo failed:", err)
			return 1
		}
		return 0
	}))
}

// demoKey is the only key the stand-in API accepts; it reaches the sidecar only through a Secret.
const demoKey = "sk-ant-demo-not-a-real-key"

type demo struct {
	ctx context.Context
	c   *cluster.Cluster
	dir string
}

func run(exitAfter bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{ctx: ctx}
	var err error
	if d.dir, err = os.MkdirTemp("", "claude-guard-demo-"); err != nil {
		return err
	}
	defer os.RemoveAll(d.dir)

	step("Building the images from this working tree: manager and sidecar (as `make images` does, for this machine's platform), the demo's app and its API stand-in")
	imgs, err := cluster.BuildImages(ctx, d.dir)
	if err != nil {
		return err
	}
	for _, r := range append(imgs.Product, imgs.Test...) {
		fmt.Printf("    %s\n", r.Pinned())
	}

	step("Starting a local cluster: control plane and a real node (kubelet, containerd, kube-proxy), in a network namespace of its own")
	if d.c, err = cluster.Start(ctx, imgs.Tarballs()...); err != nil {
		return err
	}
	defer func() { _ = d.c.Stop() }()
	fmt.Printf("    up in %.1fs\n", d.c.Started.Seconds())
	d.show("get", "nodes", "-o", "wide")

	upstream, err := d.fakeUpstream()
	if err != nil {
		return err
	}
	redisURL, stopRedis, err := d.startRedis()
	if err != nil {
		return err
	}
	defer stopRedis()
	if err := d.install(upstream, redisURL); err != nil {
		return err
	}
	if err := d.samples(); err != nil {
		return err
	}
	if err := d.storefront(); err != nil {
		return err
	}

	fmt.Printf("\nThe cluster is up. It lives in this process's network namespace; from another shell (as root):\n"+
		"  nsenter --net=/proc/%d/ns/net %s --kubeconfig %s get pods -A\n", os.Getpid(), d.c.Kubectl, d.c.Kubeconfig)
	if exitAfter {
		return nil
	}
	fmt.Println("Press Ctrl-C to stop (the cluster and everything it put on this machine go with it).")
	<-ctx.Done()
	return nil
}

// fakeUpstream runs the stand-in for api.anthropic.com as a pod and returns its Service's URL.
func (d *demo) fakeUpstream() (string, error) {
	step("A stand-in for api.anthropic.com, as a pod behind a Service (this machine has no internet)")
	if err := d.apply(cluster.FakeUpstream("api", demoKey)); err != nil {
		return "", err
	}
	if _, err := d.c.WaitAvailable(d.ctx, cluster.FakeUpstreamNamespace, "api", 2*time.Minute); err != nil {
		return "", err
	}
	url, err := d.c.ServiceURL(d.ctx, cluster.FakeUpstreamNamespace, "api", 8080)
	if err != nil {
		return "", err
	}
	fmt.Printf("    %s\n", url)
	return url, nil
}

func (d *demo) install(upstream, redisURL string) error {
	step("Platform team: install the chart (CRDs, RBAC, the manager Deployment, the injection webhook); its default images are the ones just built")
	helm := &chartenv.Helm{Bin: d.c.Helm, Kubeconfig: d.c.Kubeconfig, Home: filepath.Join(d.dir, "helm")}
	release := &chartenv.Release{Helm: helm, Name: "claude-guard", Namespace: "claude-guard-system"}
	// This node runs no SPIRE agent (test/vault runs the SPIFFE + Vault path): keys come from Secrets.
	values := []string{"--set", "upstream=" + upstream, "--set", "spiffe.socket.mode=None", "--set", "redis.url=" + redisURL}
	fmt.Printf("$ helm install claude-guard charts/claude-guard --namespace claude-guard-system --create-namespace %s\n",
		strings.ReplaceAll(strings.Join(values, " "), demoRedisPassword, "****"))
	t0 := time.Now()
	out, err := release.Install(values...)
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	if _, err := d.c.WaitAvailable(d.ctx, "claude-guard-system", "claude-guard-manager", 2*time.Minute); err != nil {
		return err
	}
	fmt.Printf("    manager Deployment Available %.1fs after helm install\n", time.Since(t0).Seconds())
	d.show("get", "pods", "-n", "claude-guard-system")
	return nil
}

func (d *demo) samples() error {
	step("Platform team: a namespace for team-a and the ClaudeTenant that bounds it")
	d.show("create", "namespace", "team-a")
	d.show("label", "namespace", "team-a", "claudeguard.io/tenant=team-a")
	d.show("apply", "-f", "config/samples/claudeguard_v1alpha1_claudetenant.yaml")
	step("Tenant: two policies from config/samples, applied with kubectl")
	d.show("apply", "-f", "config/samples/claudeguard_v1alpha1_claudeaccesspolicy_minimal.yaml")
	d.show("apply", "-f", "config/samples/claudeguard_v1alpha1_claudeaccesspolicy_tiers.yaml")
	step("Tenant: a policy asking for more than the tenant allows")
	if err := d.apply(greedyPolicy); err != nil {
		return err
	}
	if _, err := d.c.Run(d.ctx, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", "team-a", "cap/chat", "cap/assistant-tiers"); err != nil {
		return err
	}
	step("What kubectl shows")
	d.show("get", "claudetenants")
	d.show("get", "cap", "-A", "-o", "wide")
	d.show("get", "cap", "greedy", "-n", "team-a", "-o", "jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{\"\\n\"}{end}")
	step("The rendered sidecar config of policy chat (ConfigMap claude-guard-chat)")
	d.show("get", "configmap", "claude-guard-chat", "-n", "team-a", "-o", "jsonpath={.data.config\\.json}")
	return nil
}

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

// storefrontApp is the shop tenant's app: the official Anthropic Go SDK, configured only from the
// environment the webhook injects. It calls Claude once as it starts, then waits.
var storefrontApp = cluster.ClientDeployment("shop", "storefront", "claude-haiku-4-5")

func (d *demo) storefront() error {
	step("A second tenant, shop: a tenant without SPIFFE, a Secret with the API key, a policy for its storefront app")
	setup, _ := testenv.Storefront(demoKey)
	if err := d.apply(setup); err != nil {
		return err
	}
	if _, err := d.c.Run(d.ctx, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", "shop", "cap/storefront"); err != nil {
		return err
	}
	step("Tenant: a Deployment whose app is the Anthropic Go SDK; the webhook injects the native sidecar")
	t0 := time.Now()
	if err := d.apply(storefrontApp); err != nil {
		return err
	}
	if _, err := d.c.WaitAvailable(d.ctx, "shop", "storefront", 2*time.Minute); err != nil {
		return err
	}
	fmt.Printf("    Available %.1fs after kubectl apply (the app starts only once its sidecar is ready)\n", time.Since(t0).Seconds())
	d.show("get", "pods", "-n", "shop", "-o", "wide")
	d.show("get", "pods", "-n", "shop", "-l", "app=storefront", "-o",
		`jsonpath={range .items[*]}annotations: {.metadata.annotations}{"\n"}init containers: {.spec.initContainers[*].name} (restartPolicy {.spec.initContainers[0].restartPolicy}){"\n"}app env: {.spec.containers[0].env}{"\n"}{end}`)

	step("The app called Claude as it started (kubectl logs):")
	d.show("logs", "-n", "shop", "deploy/storefront", "-c", "app")
	step("More calls from inside the app container (kubectl exec): an allowed model, then one the policy denies")
	for _, model := range []string{"claude-haiku-4-5", "claude-opus-4-1"} {
		d.show("exec", "-n", "shop", "deploy/storefront", "-c", "app", "--", cluster.ClientBinary, "call", "-model", model)
	}
	step("The sidecar's audit records (kubectl logs -c " + wellknown.SidecarContainerName + "; never the prompt or the key)")
	// Audit records are written asynchronously: wait for the denied call's.
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if out, err = d.c.Run(d.ctx, "", "logs", "-n", "shop", "deploy/storefront", "-c", wellknown.SidecarContainerName); err != nil {
			return err
		}
		if strings.Contains(out, `"decision":"deny"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"decision"`) {
			fmt.Println("    " + compact(line))
		}
	}
	return nil
}

// apply runs `kubectl apply -f -` with doc, echoing it as a user would type it.
func (d *demo) apply(doc string) error {
	fmt.Println("$ kubectl apply -f - <<EOF ... EOF")
	out, err := d.c.Run(d.ctx, doc, "apply", "-f", "-")
	fmt.Print(indent(out))
	return err
}

// show runs kubectl, echoing the command as a user would type it.
func (d *demo) show(args ...string) {
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	out, _ := d.c.Run(d.ctx, "", args...)
	fmt.Print(indent(out))
}

func compact(line string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(line)) != nil {
		return line
	}
	return b.String()
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func indent(s string) string {
	if s == "" {
		return ""
	}
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}
