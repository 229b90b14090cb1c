//go:build integration

package testservers_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

const (
	kvMount  = "secret"
	audience = "openbao"
)

// tenant is one tenant's slice of Vault: a SPIFFE ID, a policy over its KV prefix, and a key there.
type tenant struct {
	name string
	id   spiffeid.ID
	key  string
}

func (tn tenant) secretPath() string { return "tenants/" + tn.name + "/anthropic" }

// TestSPIFFEIdentityReadsOnlyItsTenantsKey proves the chain the sidecar relies on, against real servers:
// SPIRE issues the test process an SVID for team-a; OpenBao's cert and jwt auth methods, bound to that
// SPIFFE ID, log it in with a policy for team-a's prefix only; and a role bound to team-b refuses it.
func TestSPIFFEIdentityReadsOnlyItsTenantsKey(t *testing.T) {
	ctx := t.Context()
	start := time.Now()
	spire := testservers.StartSPIRE(t, testservers.SPIREOptions{TrustDomain: "test.local"})
	td := spire.TrustDomain
	teamA := tenant{name: "team-a", id: spiffeid.RequireFromPath(td, "/ns/team-a/sa/chat"), key: "sk-ant-team-a"}
	teamB := tenant{name: "team-b", id: spiffeid.RequireFromPath(td, "/ns/team-b/sa/chat"), key: "sk-ant-team-b"}

	// Only team-a's identity is issued to this process; team-b exists in Vault to be refused.
	const dnsName = "chat.team-a.svc"
	spire.Register(t, testservers.Workload{ID: teamA.id, UID: os.Getuid(), DNSNames: []string{dnsName}})
	svid := spire.FetchX509SVID(t, teamA.id)
	t.Logf("SPIRE server and agent up, X.509-SVID served in %s", time.Since(start).Round(time.Millisecond))
	leaf := svid.Certificates[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != teamA.id.String() {
		t.Fatalf("X.509-SVID URI SANs = %v, want [%s]", leaf.URIs, teamA.id)
	}
	if leaf.Subject.CommonName != dnsName {
		t.Fatalf("X.509-SVID CN = %q, want %q (cert auth needs a CN)", leaf.Subject.CommonName, dnsName)
	}

	baoStart := time.Now()
	bao := testservers.StartOpenBao(t, testservers.OpenBaoOptions{TLS: true})
	t.Logf("OpenBao dev server with TLS up in %s", time.Since(baoStart).Round(time.Millisecond))
	root := bao.Client(t)
	configureTenants(t, root, spire, teamA, teamB)

	// The sidecar's way of presenting its SVID: a long-lived X509Source behind GetClientCertificate, so
	// rotated SVIDs are used without rebuilding the client.
	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(spire.SocketAddr)))
	if err != nil {
		t.Fatalf("failed to create the X509Source: %v", err)
	}
	t.Cleanup(func() { _ = source.Close() })
	certClient := func(t *testing.T) *vault.Client {
		cfg := bao.Config(t)
		cfg.HttpClient.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = tlsconfig.GetClientCertificate(source)
		c, err := vault.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.ClearToken()
		return c
	}
	jwtSVID := spire.FetchJWTSVID(t, teamA.id, audience)
	otherAudience := spire.FetchJWTSVID(t, teamA.id, "someone-else")
	plainClient := func(t *testing.T) *vault.Client {
		c, err := vault.NewClient(bao.Config(t))
		if err != nil {
			t.Fatal(err)
		}
		c.ClearToken()
		return c
	}

	tests := []struct {
		name    string
		client  func(t *testing.T) *vault.Client
		path    string
		data    map[string]any
		wantErr string // empty: login succeeds and reads team-a's key, and only that
	}{
		{name: "cert auth with the tenant's own role", client: certClient, path: "auth/cert/login",
			data: map[string]any{"name": teamA.name}},
		{name: "cert auth with another tenant's role", client: certClient, path: "auth/cert/login",
			data: map[string]any{"name": teamB.name}, wantErr: "no chain matching all constraints"},
		{name: "cert auth without a client certificate", client: plainClient, path: "auth/cert/login",
			data: map[string]any{"name": teamA.name}, wantErr: "client certificate must be supplied"},
		{name: "jwt auth with the tenant's own role", client: plainClient, path: "auth/jwt/login",
			data: map[string]any{"role": teamA.name, "jwt": jwtSVID.Marshal()}},
		{name: "jwt auth with another tenant's role", client: plainClient, path: "auth/jwt/login",
			data: map[string]any{"role": teamB.name, "jwt": jwtSVID.Marshal()}, wantErr: "invalid subject (sub) claim"},
		{name: "jwt auth with a JWT-SVID for another audience", client: plainClient, path: "auth/jwt/login",
			data: map[string]any{"role": teamA.name, "jwt": otherAudience.Marshal()}, wantErr: "invalid audience (aud) claim"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client(t)
			secret, err := c.Logical().WriteWithContext(ctx, tc.path, tc.data)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("login succeeded with policies %v, want an error containing %q", secret.Auth.Policies, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("login error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("login failed: %v", err)
			}
			c.SetToken(secret.Auth.ClientToken)
			if got := readKey(ctx, t, c, teamA); got != teamA.key {
				t.Fatalf("team-a key = %q, want %q", got, teamA.key)
			}
			_, err = c.KVv2(kvMount).Get(ctx, teamB.secretPath())
			if re := (*vault.ResponseError)(nil); !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
				t.Fatalf("reading team-b's key with team-a's token: err = %v, want 403 Forbidden", err)
			}
		})
	}
}

// configureTenants sets up what docs and hack/ will tell operators to set up: per tenant a policy over
// its KV prefix, a cert role bound to its SPIFFE ID and a jwt role bound to it as the subject.
func configureTenants(t *testing.T, root *vault.Client, spire *testservers.SPIRE, tenants ...tenant) {
	t.Helper()
	ctx := t.Context()
	sys := root.Sys()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sys.EnableAuthWithOptionsWithContext(ctx, "cert", &vault.EnableAuthOptions{Type: "cert"}))
	must(sys.EnableAuthWithOptionsWithContext(ctx, "jwt", &vault.EnableAuthOptions{Type: "jwt"}))
	_, err := root.Logical().WriteWithContext(ctx, "auth/jwt/config", map[string]any{
		"jwt_validation_pubkeys": spire.JWTAuthoritiesPEM(t),
	})
	must(err)
	bundle := spire.X509BundlePEM(t)
	for _, tn := range tenants {
		must(sys.PutPolicyWithContext(ctx, tn.name, `path "`+kvMount+`/data/tenants/`+tn.name+`/*" { capabilities = ["read"] }`))
		_, err := root.Logical().WriteWithContext(ctx, "auth/cert/certs/"+tn.name, map[string]any{
			"certificate":      bundle,
			"allowed_uri_sans": tn.id.String(),
			"token_policies":   tn.name,
			"token_ttl":        "10m",
		})
		must(err)
		_, err = root.Logical().WriteWithContext(ctx, "auth/jwt/role/"+tn.name, map[string]any{
			"role_type":       "jwt",
			"bound_audiences": audience,
			"bound_subject":   tn.id.String(),
			"user_claim":      "sub",
			"token_policies":  tn.name,
			"token_ttl":       "10m",
		})
		must(err)
		_, err = root.KVv2(kvMount).Put(ctx, tn.secretPath(), map[string]any{"api_key": tn.key})
		must(err)
	}
}

func readKey(ctx context.Context, t *testing.T, c *vault.Client, tn tenant) string {
	t.Helper()
	s, err := c.KVv2(kvMount).Get(ctx, tn.secretPath())
	if err != nil {
		t.Fatalf("failed to read %s's key: %v", tn.name, err)
	}
	v, _ := s.Data["api_key"].(string)
	return v
}
