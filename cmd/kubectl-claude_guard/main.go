// Command kubectl-claude_guard is claude-guard's kubectl plugin (kubectl claude-guard ...). Its one
// subcommand, explain, says why a pod's Claude calls are refused without reading logs:
//
//	kubectl claude-guard explain <pod> [-n namespace]
//
// It prints the pod's injection status, the ClaudeAccessPolicy that applies and its readiness, the
// effective policy the sidecar enforces (the rendered config, tenant ceilings marked), and the
// sidecar's requests by decision and denials by rule, read from its /metrics through the API server's
// pod proxy (or --metrics-url, e.g. a port-forward).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/explain"
)

const usage = `Usage: kubectl claude-guard explain POD [flags]

Shows the policy that applies to POD, what its sidecar enforces (after the tenant's ceilings), and its
requests by decision and denials by rule from the sidecar's metrics.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

type flags struct {
	kubeconfig, context, namespace     string
	metricsURL, tokenFile, tokenSecret string
	noMetrics                          bool
	timeout                            time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "explain" {
		fmt.Fprint(stderr, usage)
		return errors.New("the only subcommand is explain")
	}
	var f flags
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context")
	fs.StringVar(&f.namespace, "namespace", "", "the pod's namespace (default: the context's)")
	fs.StringVar(&f.namespace, "n", "", "shorthand for --namespace")
	fs.StringVar(&f.metricsURL, "metrics-url", "", "read the sidecar's metrics from this URL (a port-forward) instead of the API server's pod proxy")
	fs.StringVar(&f.tokenFile, "metrics-token-file", "", "file holding the sidecars' metrics token")
	fs.StringVar(&f.tokenSecret, "metrics-token-secret", "claude-guard-system/claude-guard-metrics-token", "namespace/name of the Secret holding the metrics token, read when --metrics-token-file is not set")
	fs.BoolVar(&f.noMetrics, "no-metrics", false, "do not read the sidecar's metrics")
	fs.DurationVar(&f.timeout, "timeout", 20*time.Second, "how long to wait for the API server and the sidecar")
	pod, rest := splitPod(fs, args[1:])
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if pod == "" && fs.NArg() == 1 {
		pod = fs.Arg(0)
	}
	if pod == "" || fs.NArg() > 1 {
		fs.Usage()
		return errors.New("explain takes exactly one pod name")
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return explainPod(ctx, f, pod, stdout, stderr)
}

// splitPod takes the pod name out of args wherever it is, so flags may follow it as kubectl allows. A
// flag of fs that is not boolean takes the next argument as its value unless it is written name=value.
func splitPod(fs *flag.FlagSet, args []string) (string, []string) {
	var rest []string
	pod := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "-"):
			rest = append(rest, a)
			if takesValue(fs, a) && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
		case pod == "":
			pod = a
		default:
			rest = append(rest, a)
		}
	}
	return pod, rest
}

// takesValue reports whether arg (-name or --name, without =value) is a flag of fs that needs a value.
func takesValue(fs *flag.FlagSet, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

func explainPod(ctx context.Context, f flags, pod string, stdout, stderr io.Writer) error {
	loader := clientcmd.NewDefaultClientConfigLoadingRules()
	loader.ExplicitPath = f.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loader, &clientcmd.ConfigOverrides{CurrentContext: f.context})
	ns := f.namespace
	if ns == "" {
		var err error
		if ns, _, err = cc.Namespace(); err != nil {
			return fmt.Errorf("kubeconfig: %w", err)
		}
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	o := explain.Options{Client: c, Namespace: ns, Pod: pod}
	if !f.noMetrics {
		token, note := metricsToken(ctx, c, f)
		if note != "" {
			fmt.Fprintln(stderr, note)
		}
		o.Metrics = explain.PodProxy{Client: cs, Token: token}
		if f.metricsURL != "" {
			o.Metrics = explain.URL{URL: f.metricsURL, Token: token}
		}
	}
	r, err := explain.Explain(ctx, o)
	if err != nil {
		return err
	}
	return r.Write(stdout)
}

// metricsToken reads the sidecars' metrics token from --metrics-token-file or the operator's Secret. A
// Secret that cannot be read is not an error: sidecars may serve metrics openly, and the report says
// so when they refuse.
func metricsToken(ctx context.Context, c client.Client, f flags) (token, note string) {
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", fmt.Sprintf("note: --metrics-token-file: %v", err)
		}
		return strings.TrimSpace(string(b)), ""
	}
	ns, name, ok := strings.Cut(f.tokenSecret, "/")
	if !ok || f.tokenSecret == "" {
		return "", ""
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		return "", ""
	}
	return strings.TrimSpace(string(s.Data["token"])), ""
}
