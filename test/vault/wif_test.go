//go:build integration

package vault

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/claude-guard/claude-guard/internal/identity"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
)

// TestFederationWithARealJWTSVID exchanges a JWT-SVID issued by a real SPIRE agent, obtained through the
// sidecar's identity provider, at the fake upstream's token endpoint.
func TestFederationWithARealJWTSVID(t *testing.T) {
	spire := testservers.StartSPIRE(t, testservers.SPIREOptions{TrustDomain: "prod.example"})
	id := spiffeid.RequireFromString("spiffe://prod.example/ns/team-a/sa/chat")
	spire.Register(t, testservers.Workload{ID: id, UID: os.Getuid()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := identity.Start(ctx, spire.SocketAddr, identity.Expected{TrustDomain: "prod.example", Namespace: "team-a", ServiceAccount: "chat"},
		slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	defer p.Close()
	waitTrue(t, 30*time.Second, "the identity", func() bool { return p.Ready() == nil })

	fake := fakeupstream.New()
	fake.Record = true
	up := httptest.NewServer(fake)
	defer up.Close()
	wif, err := credentials.NewWIF(credentials.WIFOptions{TokenURL: up.URL + credentials.TokenPath, Audience: "https://api.anthropic.com",
		FederationRuleID: "fdrl_team_a", OrganizationID: "org_1", Identity: p})
	if err != nil {
		t.Fatal(err)
	}
	go wif.Run(ctx)
	waitTrue(t, 10*time.Second, "an access token", func() bool { _, err := wif.Get(ctx); return err == nil })
	reqs := fake.Requests()
	if len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"federation_rule_id":"fdrl_team_a"`) {
		t.Fatalf("token requests: %d", len(reqs))
	}
	// The assertion is the JWT-SVID for the requested audience: three base64url parts.
	if s := string(reqs[0].Body); !strings.Contains(s, `"assertion":"ey`) {
		t.Fatalf("the assertion is not a JWT: %.80s", s)
	}
}
