//go:build integration

package vault

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/claude-guard/claude-guard/internal/identity"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// TestIdentitySurvivesAgentRestart runs the sidecar's identity provider against a real SPIRE agent with
// short-lived SVIDs: it becomes ready with the pod's identity, and after the agent is stopped and
// started again it keeps receiving rotated SVIDs without a restart of its own.
func TestIdentitySurvivesAgentRestart(t *testing.T) {
	spire := testservers.StartSPIRE(t, testservers.SPIREOptions{TrustDomain: "prod.example"})
	id := spiffeid.RequireFromString("spiffe://prod.example/ns/team-a/sa/chat")
	spire.Register(t, testservers.Workload{ID: id, UID: os.Getuid(), X509SVIDTTL: 20 * time.Second})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := time.Now()
	p := identity.Start(ctx, spire.SocketAddr, identity.Expected{TrustDomain: "prod.example", Namespace: "team-a", ServiceAccount: "chat"},
		slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	defer p.Close()
	waitTrue(t, 30*time.Second, "the identity to become ready", func() bool { return p.Ready() == nil })
	t.Logf("time to first SVID: %s", time.Since(started).Round(time.Millisecond))
	if p.ID() != id.String() {
		t.Fatalf("ID = %q", p.ID())
	}
	serial := func() string {
		c, err := p.ClientCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	first := serial()

	spire.StopAgent()
	time.Sleep(2 * time.Second)
	spire.StartAgent(t)
	// SPIRE rotates at half the TTL: a new certificate must arrive through the reconnected stream.
	waitTrue(t, 40*time.Second, "a rotated SVID after the agent restart", func() bool { return serial() != first })
	if err := p.Ready(); err != nil {
		t.Fatalf("not ready after rotation: %v", err)
	}
	if jwt, err := p.JWT(ctx, "vault"); err != nil || jwt == "" {
		t.Fatalf("JWT-SVID after the restart: %v", err)
	}
}

func waitTrue(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
