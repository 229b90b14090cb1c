//go:build integration

// Package gateway tests the sidecar in gateway mode against a real SPIRE server and agent: callers
// authenticate with their X.509-SVIDs (mTLS, go-spiffe tlsconfig) and an end-user JWT, and their
// SPIFFE ID keys the Workload limits and names them in audit records.
package gateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/testcert"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/app"
	"github.com/claude-guard/claude-guard/sidecar/app/apptest"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

const apiKey = "sk-ant-gateway-key"

// auditSink collects the gateway's stdout (logs and audit records).
type auditSink struct {
	mu    sync.Mutex
	lines []string
}

func (a *auditSink) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		a.lines = append(a.lines, sc.Text())
	}
	return len(p), nil
}

func (a *auditSink) records() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, l := range a.lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["log"] == "audit" {
			out = append(out, m)
		}
	}
	return out
}

func TestGatewayWithSPIFFEMutualTLS(t *testing.T) {
	spire := testservers.StartSPIRE(t, testservers.SPIREOptions{TrustDomain: "prod.example"})
	td := spire.TrustDomain
	gatewayID := spiffeid.RequireFromPath(td, "/ns/team-a/sa/claude-gateway")
	callerA := spiffeid.RequireFromPath(td, "/ns/shop/sa/checkout")
	callerB := spiffeid.RequireFromPath(td, "/ns/shop/sa/search")
	for _, id := range []spiffeid.ID{gatewayID, callerA, callerB} {
		spire.Register(t, testservers.Workload{ID: id, UID: os.Getuid()})
	}
	svidA, svidB := spire.FetchX509SVID(t, callerA), spire.FetchX509SVID(t, callerB)
	bundle, err := x509bundle.Parse(td, []byte(spire.X509BundlePEM(t)))
	if err != nil {
		t.Fatal(err)
	}

	up := httptest.NewServer(fakeupstream.New(apiKey))
	defer up.Close()
	is := oidctest.Start(t)
	dir := t.TempDir()
	cfgPath, keyPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "key")
	// Two requests per minute per calling workload, whoever the end user is.
	cfg := fmt.Sprintf(`apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
policy: {namespace: team-a, name: gateway}
identity: {trustDomain: %s, namespace: team-a}
credentials: {env: {name: NOT_USED}}
models: {allow: ["claude-haiku-*"]}
endUser:
  mode: Strict
  issuers: [{url: %s, audiences: [gateway], caCert: %q}]
limits:
  rules: [{name: per-caller, key: Workload, window: Minute, requests: 2}]
`, td.Name(), is.URL, is.CACert)
	for path, content := range map[string]string{cfgPath: cfg, keyPath: apiKey} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(wellknown.EnvSPIFFESocket, spire.SocketAddr)
	t.Setenv("POD_SERVICE_ACCOUNT", "claude-gateway")
	sink := &auditSink{}
	// start runs a gateway with edit applied to its options and returns its base URL.
	start := func(edit func(*app.Options)) string {
		o := &app.Options{ConfigPath: cfgPath, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", Upstream: up.URL, APIKeyFile: keyPath,
			ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info", Stdout: sink,
			Gateway: true, ClientTrustDomain: td.Name()}
		edit(o)
		addr, _ := apptest.Start(t, o)
		return "https://" + addr
	}
	base := start(func(*app.Options) {})

	// The gateway presents its own SVID; callers authorize exactly that ID.
	clientAt := func(base string, tlsConf *tls.Config) anthropic.Client {
		return anthropic.NewClient(option.WithBaseURL(base), option.WithMaxRetries(0),
			option.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}),
			option.WithAuthToken(is.Sign(is.Claims("alice", "gateway"))))
	}
	client := func(tlsConf *tls.Config) anthropic.Client { return clientAt(base, tlsConf) }
	asA := func() anthropic.Client {
		return client(tlsconfig.MTLSClientConfig(svidA, bundle, tlsconfig.AuthorizeID(gatewayID)))
	}
	asB := func() anthropic.Client {
		return client(tlsconfig.MTLSClientConfig(svidB, bundle, tlsconfig.AuthorizeID(gatewayID)))
	}
	params := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	call := func(c anthropic.Client) int {
		_, err := c.Messages.New(context.Background(), params)
		var apiErr *anthropic.Error
		switch {
		case err == nil:
			return 200
		case errors.As(err, &apiErr):
			return apiErr.StatusCode
		default:
			return -1 // the connection was refused
		}
	}

	// The gateway may still be waiting for its SVID: its listener answers only once it has one.
	deadline := time.Now().Add(30 * time.Second)
	for call(asA()) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway never served caller A over mTLS")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if s := call(asA()); s != 200 {
		t.Fatalf("caller A's second request: %d", s)
	}
	if s := call(asA()); s != 429 {
		t.Fatalf("caller A's third request: %d, want 429 (limits are keyed by the caller's SPIFFE ID)", s)
	}
	if s := call(asB()); s != 200 {
		t.Fatalf("caller B has its own quota: %d", s)
	}

	// No client certificate, or one no SPIRE authority signed: the handshake fails.
	noCert := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true} //nolint:gosec // the server certificate is not what this checks
	if s := call(client(noCert)); s != -1 {
		t.Fatalf("a caller without a client certificate got %d", s)
	}
	forged := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, Certificates: []tls.Certificate{selfSignedSVID(t, callerA)}} //nolint:gosec // as above
	if s := call(client(forged)); s != -1 {
		t.Fatalf("a caller with a self-signed SPIFFE certificate got %d", s)
	}

	// With a web certificate from files instead of the SVID (--tls-cert-file), callers' SVIDs are still
	// required and verified against the trust domain.
	certPEM, keyPEM, pool := testcert.Loopback(t)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for path, content := range map[string]string{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	web := start(func(o *app.Options) { o.TLSCertFile, o.TLSKeyFile = certFile, keyFile })
	webTLS := func(withSVID bool) *tls.Config {
		c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		if withSVID {
			c.GetClientCertificate = tlsconfig.GetClientCertificate(svidB)
		}
		return c
	}
	deadline = time.Now().Add(30 * time.Second)
	for call(clientAt(web, webTLS(true))) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway with a certificate from files never served caller B over mTLS")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if s := call(clientAt(web, webTLS(false))); s != -1 {
		t.Fatalf("the gateway with a certificate from files served a caller without an SVID: %d", s)
	}
	forgedWeb := webTLS(false)
	forgedWeb.Certificates = []tls.Certificate{selfSignedSVID(t, callerA)}
	if s := call(clientAt(web, forgedWeb)); s != -1 {
		t.Fatalf("the gateway with a certificate from files accepted a self-signed SPIFFE certificate: %d", s)
	}

	// Audit records are flushed every 100 ms.
	var workloads []string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		workloads = workloads[:0]
		for _, r := range sink.records() {
			workloads = append(workloads, fmt.Sprint(r["workload"]))
		}
		joined := strings.Join(workloads, " ")
		if strings.Contains(joined, callerA.String()) && strings.Contains(joined, callerB.String()) {
			return
		}
	}
	t.Fatalf("audit records name workloads %v, want the callers' SPIFFE IDs", workloads)
}

// selfSignedSVID is a certificate that claims id but is signed by nobody the trust domain knows.
func selfSignedSVID(t *testing.T, id spiffeid.ID) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := id.URL()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}
