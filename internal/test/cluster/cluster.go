package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/controllers"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// Cluster is a running cluster (in this process's network namespace).
type Cluster struct {
	// Dir is its run directory: state, logs (Dir/logs/<component>.log) and the admin kubeconfig.
	Dir string
	// Kubeconfig is the admin kubeconfig file (system:masters).
	Kubeconfig string
	Config     *rest.Config
	Client     client.Client
	// Kubectl is the kubectl that matches the cluster's version.
	Kubectl string
	// Helm is the pinned helm binary.
	Helm string
	// Started is how long hack/cluster/up.sh took, until the node was Ready and Services routed.
	Started time.Duration
}

// Start brings the cluster up with the image tarballs given imported into the node (one of them must
// hold the sandbox image: see SandboxImage), and returns once the node is Ready and Services route. It
// must run in the process Main re-executed.
func Start(ctx context.Context, images ...string) (*Cluster, error) {
	if !InNetns() {
		return nil, errors.New("cluster.Start must run in the network namespace cluster.Main makes: call cluster.Main from TestMain (or main)")
	}
	dir := os.Getenv(envRunDir)
	c := &Cluster{Dir: dir, Kubectl: filepath.Join(os.Getenv(envAssets), "kubectl"), Helm: os.Getenv(envHelm)}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, script("up.sh"))
	cmd.Env = append(scriptEnv(dir), "CG_CLUSTER_IMAGES="+strings.Join(images, " "))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("hack/cluster/up.sh: %w\n%s", err, stderr.String())
	}
	c.Started = time.Since(t0)
	c.Kubeconfig = strings.TrimSpace(stdout.String())
	var err error
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return nil, fmt.Errorf("failed to load the cluster's kubeconfig: %w", err)
	}
	c.Config.QPS, c.Config.Burst = 100, 200
	scheme, err := controllers.NewScheme()
	if err != nil {
		return nil, err
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	return c, nil
}

// Stop stops every process of the cluster and removes what it left on the machine (Main does it again
// after the namespaced process exits, whatever happened to it).
func (c *Cluster) Stop() error { return down(c.Dir) }

// Run runs kubectl against the cluster and returns its combined output.
func (c *Cluster) Run(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Dir = testenv.RepoRoot() // file arguments are relative to the repository, as in the docs
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// LogTail returns the last lines of a component's log (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kube-proxy, kubelet, containerd), for failure messages.
func (c *Cluster) LogTail(component string, lines int) string {
	data, err := os.ReadFile(filepath.Join(c.Dir, "logs", component+".log"))
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// WaitAvailable waits until Deployment ns/name has rolled out completely (every replica updated and
// available, none left over) and returns how long that took.
func (c *Cluster) WaitAvailable(ctx context.Context, ns, name string, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	if err := wait.Until(ctx, timeout, func() error { return c.available(ctx, ns, name) }); err != nil {
		return 0, fmt.Errorf("deployment %s/%s not available within %s: %w", ns, name, timeout, err)
	}
	return time.Since(t0), nil
}

func (c *Cluster) available(ctx context.Context, ns, name string) error {
	var d appsv1.Deployment
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
		return err
	}
	want := *d.Spec.Replicas
	if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want ||
		d.Status.AvailableReplicas != want || d.Status.Replicas != want {
		return fmt.Errorf("%d updated, %d available, %d in all, want %d",
			d.Status.UpdatedReplicas, d.Status.AvailableReplicas, d.Status.Replicas, want)
	}
	return nil
}

// ServiceURL returns http://<cluster IP>:<port> of Service ns/name: there is no cluster DNS here, so
// pods reach Services by their cluster IPs (through kube-proxy's rules).
func (c *Cluster) ServiceURL(ctx context.Context, ns, name string, port int) (string, error) {
	var svc corev1.Service
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		return "", fmt.Errorf("failed to read Service %s/%s: %w", ns, name, err)
	}
	return fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, port), nil
}
