package chartenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/internal/test/ports"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// ManagerPod is the release's manager pod as this machine hosts it: the arguments of the release's
// Deployment with only node-specific values changed, and a kubeconfig for the pod's ServiceAccount.
type ManagerPod struct {
	Args       []string
	Kubeconfig string
	// ProbeAddr serves /healthz and /readyz.
	ProbeAddr string
}

// PrepareManager reads the release's Deployment and does what the kubelet and kube-proxy would for its
// pod: it mounts the webhook Secret into a cert directory under dir (kept in sync until ctx ends) and
// routes the webhook Service to this machine. Run the manager with the returned arguments.
func PrepareManager(ctx context.Context, env *testenv.Env, r *Release, dir string) (*ManagerPod, error) {
	d, err := r.Deployment()
	if err != nil {
		return nil, err
	}
	args, err := ManagerArgs(d)
	if err != nil {
		return nil, err
	}
	ip, err := HostIP()
	if err != nil {
		return nil, err
	}
	webhookPort, err := ports.Free(ip)
	if err != nil {
		return nil, err
	}
	probePort, err := ports.Free("127.0.0.1")
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "serving-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	pod := &ManagerPod{ProbeAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(probePort))}
	pod.Args = Override(args, map[string]string{
		"health-probe-bind-address": pod.ProbeAddr,
		"metrics-bind-address":      "0",
		"webhook-host":              ip,
		"webhook-port":              strconv.Itoa(webhookPort),
		"webhook-cert-dir":          certDir,
	})
	service, _ := Flag(args, "webhook-service")
	secret, _ := Flag(args, "webhook-secret")
	if service == "" || secret == "" {
		return nil, fmt.Errorf("the manager's arguments name no webhook Service or Secret: %q", args)
	}
	if err := PublishEndpoint(ctx, env.Client, r.Namespace, service, "https", ip, int32(webhookPort)); err != nil {
		return nil, err
	}
	go MountSecret(ctx, env.Client, r.Namespace, secret, certDir)
	if pod.Kubeconfig, err = ServiceAccountKubeconfig(env, r.Namespace, d.Spec.Template.Spec.ServiceAccountName, dir); err != nil {
		return nil, err
	}
	return pod, nil
}

// WaitForInjection waits until a server-side dry run of pod comes back injected. The API server learns
// the webhook's endpoint from an informer, and under failurePolicy Ignore a pod created before that
// would be admitted without the sidecar, as in a cluster whose webhook is not reachable yet.
func WaitForInjection(ctx context.Context, c client.Client, pod *corev1.Pod, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		p := pod.DeepCopy()
		err := c.Create(ctx, p, client.DryRunAll)
		if err == nil && p.Annotations[wellknown.AnnotationStatus] == wellknown.StatusInjected {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("a dry run of pod %s/%s still fails after %s: %w", pod.Namespace, pod.Name, timeout, err)
			}
			return fmt.Errorf("a dry run of pod %s/%s is still not injected after %s (annotations: %v)", pod.Namespace, pod.Name, timeout, p.Annotations)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
