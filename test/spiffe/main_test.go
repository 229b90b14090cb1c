//go:build integration

// Package spiffe runs the SPIFFE and Vault path on real pods: SPIRE (server, agent, CSI driver and the
// SPIRE Controller Manager, exactly config/spire) on the test cluster's node, OpenBao outside the node
// on the cluster's bridge, and claude-guard installed with the chart's SPIFFE defaults. An injected pod
// is attested by the agent through the real kubelet, gets its SVID through the CSI driver, logs in to
// OpenBao with it (cert auth) and reads its own tenant's key; the operator registers only the sidecars
// it wrote itself, and the entries follow pods, policies and tenants.
package spiffe

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	dir, err := os.MkdirTemp("", "cg-spiffe-")
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
	spire, err := cluster.BuildSPIREImages(ctx, filepath.Join(dir, "spire"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	figure("images built (manager, sidecar, SPIRE, test images; host platform)", time.Since(t0))
	if c, err = cluster.Start(ctx, append(imgs.Tarballs(), spire...)...); err != nil {
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

func record(figure string) {
	line := "figure: " + figure
	fmt.Println(line)
	if f := os.Getenv("CLAUDE_GUARD_FIGURES"); f != "" {
		if out, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			_, _ = fmt.Fprintln(out, "test/spiffe "+line)
			_ = out.Close()
		}
	}
}
