// Package chartenv installs the Helm chart into a test control plane (internal/test/testenv) and runs the
// manager the way the release would: with the arguments of the release's Deployment and the identity of
// the release's ServiceAccount (so the chart's RBAC is what the API server enforces). There is no kubelet
// or kube-proxy, so their part for the manager's pod is done by hand, and only that: the webhook Secret's
// files are copied into the cert directory, and an EndpointSlice routes the webhook Service to the
// process. test/chart and `make demo` use it.
package chartenv

import (
	"github.com/claude-guard/claude-guard/internal/test/repo"

	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claude-guard/claude-guard/internal/test/testenv"
)

// Chart is the chart's directory.
func Chart() string { return filepath.Join(testenv.RepoRoot(), "charts", "claude-guard") }

var helm = sync.OnceValues(func() (string, error) { return repo.Tool("CLAUDE_GUARD_HELM", "helm.sh") })

// HelmBinary returns the pinned helm: $CLAUDE_GUARD_HELM, or what hack/helm.sh builds (and caches).
func HelmBinary() (string, error) { return helm() }

// Helm runs helm against one cluster.
type Helm struct {
	Bin        string
	Kubeconfig string
	// Home isolates helm's config, cache and data directories from the user's.
	Home string
}

// NewHelm returns a Helm for the cluster in kubeconfig, with its state under home.
func NewHelm(kubeconfig, home string) (*Helm, error) {
	bin, err := HelmBinary()
	if err != nil {
		return nil, err
	}
	return &Helm{Bin: bin, Kubeconfig: kubeconfig, Home: home}, nil
}

// Run runs helm with args and returns its combined output.
func (h *Helm) Run(args ...string) (string, error) {
	cmd := exec.Command(h.Bin, args...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+h.Kubeconfig,
		"HELM_CONFIG_HOME="+filepath.Join(h.Home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.Home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.Home, "data"),
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// WithServiceRouting makes the API server reach webhook Services through their EndpointSlices
// (--enable-aggregator-routing) instead of their cluster IPs, which nothing routes without kube-proxy.
// The TLS server name stays <service>.<namespace>.svc, so the webhook's certificate is checked as in a
// cluster.
func WithServiceRouting(e *envtest.Environment) {
	e.ControlPlane.GetAPIServer().Configure().Set("enable-aggregator-routing", "true")
}

// WithoutCRDs starts the control plane without the CRDs: the chart installs them.
func WithoutCRDs(e *envtest.Environment) {
	e.CRDDirectoryPaths, e.ErrorIfCRDPathMissing = nil, false
}

func envtestUser(namespace, name string) envtest.User {
	return envtest.User{
		Name:   "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
}
