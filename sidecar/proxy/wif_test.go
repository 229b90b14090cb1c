package proxy_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/proxy/proxytest"
)

// jwtSVIDs hands out a JWT-shaped assertion; the fake token endpoint checks the shape, not a signature.
type jwtSVIDs struct{}

func (jwtSVIDs) ClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return nil, errors.New("not used")
}
func (jwtSVIDs) JWT(context.Context, string) (string, error) { return "eyJh.eyJz.c2ln", nil }

// TestWorkloadIdentityFederation sends the official SDK's calls through the sidecar with a credential
// obtained by exchanging a JWT-SVID at the token endpoint: the upstream sees the access token as a bearer
// token with the OAuth beta added to the client's own betas, and a 401 makes the sidecar exchange again.
func TestWorkloadIdentityFederation(t *testing.T) {
	fake := fakeupstream.New() // accepts no API key at all: only tokens it issued
	fake.Record = true
	up := httptest.NewServer(fake)
	defer up.Close()
	wif, err := credentials.NewWIF(credentials.WIFOptions{
		TokenURL: up.URL + credentials.TokenPath, Audience: "anthropic",
		FederationRuleID: "fdrl_test", OrganizationID: "org_test", Identity: jwtSVIDs{},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go wif.Run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for _, err := wif.Get(ctx); err != nil; _, err = wif.Get(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("no token exchanged: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	sdk := proxytest.Serve(t, baseConfig, up.URL, wif)
	params := proxytest.Hello()
	if _, err := sdk.Messages.New(ctx, params, option.WithHeaderAdd("anthropic-beta", "a-2025")); err != nil {
		t.Fatalf("call with a federated token: %v", err)
	}
	reqs := fake.Requests()
	last := reqs[len(reqs)-1]
	if !strings.HasPrefix(last.Header.Get("Authorization"), "Bearer sk-ant-oat-fake-") || last.Header.Get("X-Api-Key") != "" {
		t.Errorf("upstream auth headers: Authorization=%q x-api-key=%q", last.Header.Get("Authorization"), last.Header.Get("X-Api-Key"))
	}
	if got := strings.Join(last.Header.Values("Anthropic-Beta"), "|"); got != "a-2025|"+credentials.OAuthBeta {
		t.Errorf("anthropic-beta = %q, want the client's beta then the OAuth beta", got)
	}

	// The upstream stops accepting the token: the 401 reaches the client once, and the sidecar
	// exchanges a new token for the next call.
	fake.SetKeys()
	fake.RevokeTokens()
	before := fake.Exchanges.Load()
	if _, err := sdk.Messages.New(ctx, params); err == nil {
		t.Fatal("call with a revoked token succeeded")
	}
	deadline = time.Now().Add(5 * time.Second)
	for fake.Exchanges.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("no new exchange after the upstream's 401")
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		if _, err := sdk.Messages.New(ctx, params); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("call after the re-exchange: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
