//go:build integration

package testservers_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// TestSPIREAgentRestartResumesServing shows that StopAgent takes the Workload API away and StartAgent
// brings it back with the same agent identity (a join token cannot attest twice).
func TestSPIREAgentRestartResumesServing(t *testing.T) {
	spire := testservers.StartSPIRE(t, testservers.SPIREOptions{})
	id := spiffeid.RequireFromPath(spire.TrustDomain, "/ns/team-a/sa/restart")
	spire.Register(t, testservers.Workload{ID: id, UID: os.Getuid()})
	before := spire.FetchX509SVID(t, id)

	spire.StopAgent()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(spire.SocketAddr)); err == nil {
		t.Fatal("the Workload API still answers after StopAgent")
	}

	spire.StartAgent(t)
	after := spire.FetchX509SVID(t, id)
	if after.ID != before.ID {
		t.Fatalf("SVID after restart is %s, want %s", after.ID, before.ID)
	}
}
