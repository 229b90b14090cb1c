//go:build integration

// Package pods runs claude-guard as a platform team and a tenant would, in real pods on a real node
// (internal/test/cluster: kubelet, containerd, kube-proxy, a whole control plane): the chart installed
// with helm from the images `make images` builds, the manager Deployment rolling out, a tenant's
// policy applied with kubectl, the webhook injecting the native sidecar into a Deployment and a Job whose
// app is the official Anthropic Go SDK, calls through the sidecar to a fake Anthropic API running as a
// pod, hot reload through the kubelet's ConfigMap sync, helm upgrade and uninstall.
package pods

import (
	"testing"

	"github.com/claude-guard/claude-guard/internal/test/cluster"
)

// c is the cluster every test of the package shares (one node per machine).
var c *cluster.Cluster

func TestMain(m *testing.M) {
	cluster.TestMain(m, cluster.TestMainOptions{Package: "test/pods"}, &c)
}

// figures records what the tests measure (hack/test.sh prints them at the end of the suite).
var figures = cluster.Figures{Package: "test/pods"}
