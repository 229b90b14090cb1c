//go:build integration

// Package pods runs claude-guard as a platform team and a tenant would, in real pods on a real node
// (internal/test/cluster: kubelet, containerd, kube-proxy, a whole control plane): the chart installed
// with helm from the images `make images` builds, the manager Deployment rolling out, a tenant's
// policy applied with kubectl, the webhook injecting the native sidecar into a Deployment and a Job whose
// app is the official Anthropic Go SDK, calls through the sidecar to a fake Anthropic API running as a
// pod, hot reload through the kubelet's ConfigMap sync, helm upgrade and uninstall.
package pods

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/cluster"
)

// c is the cluster every test of the package shares (one node per machine).
var c *cluster.Cluster

func TestMain(m *testing.M) { os.Exit(cluster.Main(func() int { return run(m) })) }

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "cg-pods-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	imgs, err := cluster.BuildImages(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	figure("images built (manager, sidecar, test images; host platform)", time.Since(t0))
	if c, err = cluster.Start(ctx, imgs.Tarballs()...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	figure("cluster start (control plane + node Ready + Services routed)", c.Started)
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

// figure records a measured figure: in the test log, and in $CLAUDE_GUARD_FIGURES (hack/test.sh prints
// that file at the end of the suite).
func figure(what string, d time.Duration) { record(fmt.Sprintf("%s: %.1fs", what, d.Seconds())) }

// record writes one figure line.
func record(figure string) {
	line := "figure: " + figure
	fmt.Println(line)
	if f := os.Getenv("CLAUDE_GUARD_FIGURES"); f != "" {
		if out, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			_, _ = fmt.Fprintln(out, "test/pods "+line)
			_ = out.Close()
		}
	}
}
