//go:build integration

// Package spiffe runs the SPIFFE and Vault path on real pods: SPIRE (server, agent, CSI driver and the
// SPIRE Controller Manager, exactly config/spire) on the test cluster's node, OpenBao outside the node
// on the cluster's bridge, and claude-guard installed with the chart's SPIFFE defaults. An injected pod
// is attested by the agent through the real kubelet, gets its SVID through the CSI driver, logs in to
// OpenBao with it (cert auth) and reads its own tenant's key; the operator registers only the sidecars
// it wrote itself, and the entries follow pods, policies and tenants.
package spiffe

import (
	"testing"

	"github.com/claude-guard/claude-guard/internal/test/cluster"
)

// c is the cluster every test of the package shares (one node per machine).
var c *cluster.Cluster

func TestMain(m *testing.M) {
	cluster.TestMain(m, cluster.TestMainOptions{Package: "test/spiffe", SPIRE: true}, &c)
}

// figures records what the tests measure (hack/test.sh prints them at the end of the suite).
var figures = cluster.Figures{Package: "test/spiffe"}
