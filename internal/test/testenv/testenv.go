// Package testenv starts a real control plane (etcd + kube-apiserver from hack/envtest.sh) with the
// claude-guard CRDs installed, for tests that must be judged by the API server itself.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/test/repo"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string { return repo.Root() }

var assets = sync.OnceValues(func() (string, error) { return repo.Tool("KUBEBUILDER_ASSETS", "envtest.sh") })

// Assets returns the directory holding kube-apiserver, etcd and kubectl: $KUBEBUILDER_ASSETS, or what
// hack/envtest.sh builds (and caches) when it is unset, so `go test ./...` works on a fresh clone too.
func Assets() (string, error) { return assets() }

// Kubectl returns the path of the kubectl that matches the test control plane.
func Kubectl() (string, error) {
	d, err := Assets()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "kubectl"), nil
}

// Env is a running control plane.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	Client client.Client
}

// Start starts etcd and kube-apiserver and installs the CRDs from config/crd/bases.
func Start(mut ...func(*envtest.Environment)) (*Env, error) {
	dir, err := Assets()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	e := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	for _, m := range mut {
		m(e)
	}
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("failed to start the test control plane: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = e.Stop()
		return nil, err
	}
	return &Env{Environment: e, Config: cfg, Client: c}, nil
}

// WithSPIRECRDs also installs the SPIRE Controller Manager's CRDs (ClusterStaticEntry and friends), from
// hack/spire.sh's output.
func WithSPIRECRDs(dir string) func(*envtest.Environment) {
	return func(e *envtest.Environment) {
		e.CRDDirectoryPaths = append(e.CRDDirectoryPaths, filepath.Join(dir, "crds"))
	}
}

// KubeconfigFile writes a system:masters kubeconfig for kubectl to dir and returns its path.
func (e *Env) KubeconfigFile(dir string) (string, error) {
	u, err := e.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("failed to add kubectl user: %w", err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
}
