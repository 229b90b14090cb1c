//go:build integration

// Package vault tests the sidecar's Vault credential source and the per-tenant Vault set-up
// (hack/vault-tenant.sh) against real servers: OpenBao (the Vault API) and SPIRE, built by hack/ scripts
// and started on loopback. It proves that isolation between tenants holds in Vault itself.
package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
)

const (
	keyA = "sk-ant-team-a-000000000000000000000000"
	keyB = "sk-ant-team-b-000000000000000000000000"
)

// world is one OpenBao and one SPIRE, set up for two tenants as a platform team would.
type world struct {
	bao        *testservers.OpenBao
	spire      *testservers.SPIRE
	caPEM      []byte
	chatA      spiffeid.ID // a workload of team-a
	chatB      spiffeid.ID // a workload of team-b
	svidA      *x509svid.SVID
	svidB      *x509svid.SVID
	rootClient *vaultapi.Client
}

// setup starts the servers and configures both tenants. Only team-a's workload is registered in SPIRE
// (the test process would otherwise hold both SVIDs); isolation tests add team-b's with registerB.
func setup(t *testing.T) *world {
	t.Helper()
	w := &world{}
	w.spire = testservers.StartSPIRE(t, testservers.SPIREOptions{TrustDomain: "prod.example"})
	w.bao = testservers.StartOpenBao(t, testservers.OpenBaoOptions{TLS: true})
	ca, err := os.ReadFile(w.bao.CACert)
	if err != nil {
		t.Fatal(err)
	}
	w.caPEM = ca
	w.chatA = spiffeid.RequireFromString("spiffe://prod.example/ns/team-a/sa/chat")
	w.chatB = spiffeid.RequireFromString("spiffe://prod.example/ns/team-b/sa/chat")
	w.register(t, w.chatA)
	w.svidA = w.spire.FetchX509SVID(t, w.chatA)

	ctx := context.Background()
	w.rootClient = w.bao.Client(t)
	sys := w.rootClient.Sys()
	for _, m := range []string{"cert", "jwt"} {
		if err := sys.EnableAuthWithOptions(m, &vaultapi.EnableAuthOptions{Type: m}); err != nil {
			t.Fatalf("enable %s auth: %v", m, err)
		}
	}
	if _, err := w.rootClient.Logical().WriteWithContext(ctx, "auth/jwt/config", map[string]any{
		"jwt_validation_pubkeys": w.spire.JWTAuthoritiesPEM(t),
	}); err != nil {
		t.Fatalf("configure jwt auth: %v", err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, []byte(w.spire.X509BundlePEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	w.tenant(t, "team-a", "tenants/team-a", "team-a", "--bundle", bundle, "--methods", "cert,jwt")
	w.tenant(t, "team-b", "tenants/team-b", "team-b", "--bundle", bundle, "--methods", "cert,jwt")
	for path, key := range map[string]string{"tenants/team-a/anthropic": keyA, "tenants/team-b/anthropic": keyB} {
		if _, err := w.rootClient.KVv2("secret").Put(ctx, path, map[string]any{"api_key": key}); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	return w
}

// register issues id to the test process (cert auth needs a DNS name for the certificate's CN).
func (w *world) register(t *testing.T, id spiffeid.ID) {
	t.Helper()
	w.spire.Register(t, testservers.Workload{ID: id, UID: os.Getuid(), DNSNames: []string{strings.ReplaceAll(id.Path()[1:], "/", "-")}})
}

// registerB issues team-b's identity too.
func (w *world) registerB(t *testing.T) {
	t.Helper()
	w.register(t, w.chatB)
	w.svidB = w.spire.FetchX509SVID(t, w.chatB)
}

// tenant runs hack/vault-tenant.sh with OpenBao's own binary as the Vault CLI.
func (w *world) tenant(t *testing.T, name, prefix, namespaces string, args ...string) {
	t.Helper()
	dir, err := testservers.OpenBaoDir()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("..", "..")
	cmd := exec.Command(filepath.Join(root, "hack", "vault-tenant.sh"), append([]string{"--tenant", name, "--prefix", prefix,
		"--namespaces", namespaces, "--trust-domain", "prod.example"}, args...)...)
	cmd.Env = append(os.Environ(), "VAULT_CLI="+filepath.Join(dir, "bao"), "VAULT_ADDR="+w.bao.Addr,
		"VAULT_TOKEN="+w.bao.RootToken, "VAULT_CACERT="+w.bao.CACert, "BAO_ADDR="+w.bao.Addr, "BAO_TOKEN="+w.bao.RootToken, "BAO_CACERT="+w.bao.CACert)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/vault-tenant.sh %s: %v\n%s", name, err, out)
	}
}

// svids presents one fixed SVID (the test process holds both tenants' SVIDs, so it picks explicitly).
type svids struct {
	t     *testing.T
	spire *testservers.SPIRE
	svid  *x509svid.SVID
}

func (s svids) ClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := &tls.Certificate{PrivateKey: s.svid.PrivateKey, Leaf: s.svid.Certificates[0]}
	for _, x := range s.svid.Certificates {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}

func (s svids) JWT(_ context.Context, audience string) (string, error) {
	return s.spire.FetchJWTSVID(s.t, s.svid.ID, audience).Marshal(), nil
}

func (w *world) source(t *testing.T, method, role, path string, svid *x509svid.SVID, staleness time.Duration) *credentials.Vault {
	t.Helper()
	v, err := credentials.NewVault(credentials.VaultOptions{
		Address: w.bao.Addr, CACert: w.caPEM,
		AuthMethod: method, Role: role, Audience: "vault",
		Mount: "secret", Path: path, Field: "api_key",
		RefreshInterval: 200 * time.Millisecond, MaxStaleness: staleness,
		Identity: svids{t: t, spire: w.spire, svid: svid},
		Log:      slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go v.Run(ctx)
	return v
}

// eventuallyKey waits until the source serves want (or, with want "", until it fails with cause).
func eventuallyKey(t *testing.T, v *credentials.Vault, want, cause string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		got, err = v.Get(context.Background())
		if want != "" && got == want {
			return
		}
		if want == "" && err != nil && errors.Is(err, credentials.ErrNoCredential) && strings.Contains(err.Error(), cause) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("want key %q / error containing %q; last: key %q, error %v", redact(want), cause, redact(got), err)
}

func redact(k string) string {
	if len(k) > 14 {
		return k[:14] + "..."
	}
	return k
}

func TestTenantsAreIsolatedInVault(t *testing.T) {
	w := setup(t)
	w.registerB(t)
	cases := []struct {
		name, method, role, path string
		svid                     func() *x509svid.SVID
		want, cause              string
	}{
		{"team-a reads its key with cert auth", "cert", "team-a", "tenants/team-a/anthropic", func() *x509svid.SVID { return w.svidA }, keyA, ""},
		{"team-a reads its key with jwt auth", "jwt", "team-a", "tenants/team-a/anthropic", func() *x509svid.SVID { return w.svidA }, keyA, ""},
		{"team-b reads its own key", "cert", "team-b", "tenants/team-b/anthropic", func() *x509svid.SVID { return w.svidB }, keyB, ""},
		{"team-a cannot read team-b's path", "cert", "team-a", "tenants/team-b/anthropic", func() *x509svid.SVID { return w.svidA }, "", "permission denied"},
		{"team-a cannot log in as team-b (cert)", "cert", "team-b", "tenants/team-b/anthropic", func() *x509svid.SVID { return w.svidA }, "", "failed to log in"},
		{"team-a cannot log in as team-b (jwt)", "jwt", "team-b", "tenants/team-b/anthropic", func() *x509svid.SVID { return w.svidA }, "", "failed to log in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := w.source(t, c.method, c.role, c.path, c.svid(), time.Hour)
			eventuallyKey(t, v, c.want, c.cause)
		})
	}
}

func TestRotationAndStaleness(t *testing.T) {
	w := setup(t)
	v := w.source(t, "cert", "team-a", "tenants/team-a/anthropic", w.svidA, 3*time.Second)
	eventuallyKey(t, v, keyA, "")

	// A rotated key is picked up at once after an upstream 401 (Invalidate), without a restart.
	rotated := "sk-ant-team-a-rotated-0000000000000000"
	if _, err := w.rootClient.KVv2("secret").Put(context.Background(), "tenants/team-a/anthropic", map[string]any{"api_key": rotated}); err != nil {
		t.Fatal(err)
	}
	v.Invalidate()
	eventuallyKey(t, v, rotated, "")

	// Vault goes away: the last key keeps serving, then the source fails closed after MaxStaleness.
	w.bao.Stop()
	if got, err := v.Get(context.Background()); err != nil || got != rotated {
		t.Fatalf("right after Vault stopped: key %q, error %v", redact(got), err)
	}
	eventuallyKey(t, v, "", "beyond the maximum staleness")
}

// testWriter sends the source's logs to the test log; they must never contain a key.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	for _, k := range []string{keyA, keyB, "rotated-0000"} {
		if strings.Contains(string(p), k) {
			w.t.Errorf("a log line contains an API key: %s", p)
		}
	}
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
