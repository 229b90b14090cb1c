// Command demo runs claude-guard end to end on this machine with nothing but Go: a real local control
// plane (etcd + kube-apiserver built by hack/envtest.sh), the manager binary, and the sample tenant and
// policies applied with kubectl. It prints what a platform team and a tenant would see, then keeps the
// control plane up until interrupted (or exits at once with -exit).
//
//	make demo            # or: go run ./hack/demo
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/claude-guard/claude-guard/internal/testenv"
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

	step("Building the manager")
	manager := filepath.Join(d.dir, "manager")
	if err := d.sh(ctx, "go", "build", "-o", manager, "./cmd/manager"); err != nil {
		return err
	}

	step("Starting a local control plane (etcd + kube-apiserver) with the CRDs installed")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	if d.kubeconfig, err = env.KubeconfigFile(d.dir); err != nil {
		return err
	}
	if d.kubectl, err = testenv.Kubectl(); err != nil {
		return err
	}

	step("Starting the manager (deny-by-default for namespaces no ClaudeTenant selects)")
	probe, err := freeAddr()
	if err != nil {
		return err
	}
	mgr := exec.CommandContext(ctx, manager, "--kubeconfig", d.kubeconfig, "--no-tenant=Deny",
		"--metrics-bind-address=0", "--health-probe-bind-address="+probe, "--vault-address=https://vault.example:8200")
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

	fmt.Printf("\nThe control plane is up. In another shell:\n  export KUBECONFIG=%s\n  %s get cap -A\n", d.kubeconfig, d.kubectl)
	fmt.Printf("Manager log: %s\n", mgrLog.Name())
	if exitAfter {
		return nil
	}
	fmt.Println("Press Ctrl-C to stop.")
	<-ctx.Done()
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
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range names {
		for {
			cmd := exec.CommandContext(ctx, d.kubectl, "--kubeconfig", d.kubeconfig, "get", "cap", n, "-n", "team-a",
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

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
