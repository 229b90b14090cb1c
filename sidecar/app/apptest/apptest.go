// Package apptest runs the real sidecar (app.Run) inside a test process, on the options a test gives
// it, for tests that need several sidecars on their own ports or a sidecar beside in-process servers;
// internal/test/podrun runs the built binary as a pod's container instead. It lives under sidecar/
// because the manager's packages must not link the sidecar.
package apptest

import (
	"context"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/app"
)

// Start runs a sidecar on o until the test ends, and returns its bound proxy and metrics addresses. o's
// Ready is set here; leave Listen and MetricsListen at 127.0.0.1:0 for free ports. The test fails if the
// sidecar does not start within 30 s, or returns an error when it is stopped.
func Start(t *testing.T, o *app.Options) (proxyAddr, metricsAddr string) {
	t.Helper()
	type addrs struct{ proxy, metrics string }
	ready := make(chan addrs, 1)
	o.Ready = func(p, m string) { ready <- addrs{p, m} }
	o.Complete()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a.proxy, a.metrics
	case err := <-done:
		t.Fatalf("sidecar: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the sidecar did not start within 30 s")
	}
	return "", ""
}
