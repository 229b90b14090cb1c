package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/claude-guard/claude-guard/internal/test/testcert"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

// gatewayPeer is the interleaved run's name for the sidecar binary in gateway mode.
const gatewayPeer = "gateway (TLS)"

const gatewayAudience = "claude-guard-bench"

// startGatewayPeer runs the sidecar binary as the gateway does in a cluster (docs/gateway.md): TLS from
// the client, and every call carrying an end user's JWT, verified (Strict) against a real OIDC issuer
// serving discovery and JWKS on loopback. The token is reused, as a client's access token is until it
// expires, so what is measured per call is TLS and the verified-token path, not RSA.
func startGatewayPeer(ctx context.Context, bin, upstream string, procs int, base *http.Client) (_ *peer, err error) {
	tb := &benchTB{}
	defer func() {
		if r := recover(); r != nil {
			if r != tb {
				panic(r)
			}
			err = tb.err
		}
	}()
	is := oidctest.Start(tb)
	certPEM, keyPEM, pool := testcert.Loopback(tb)
	dir, err := os.MkdirTemp("", "claude-guard-bench-gateway-")
	if err != nil {
		is.Close()
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, content := range map[string]string{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			is.Close()
			return nil, err
		}
	}
	config := benchConfig + fmt.Sprintf("endUser:\n  mode: Strict\n  issuers: [{url: %q, audiences: [%s], caCert: %s}]\n",
		is.URL, gatewayAudience, strconv.Quote(is.CACert))
	sc, err := startSidecarWith(ctx, bin, upstream, procs, nil, config, "https", "--gateway",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile)
	if err != nil {
		is.Close()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	tr := base.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	token := is.Sign(is.Claims("bench-user", gatewayAudience))
	client := &http.Client{Transport: bearer{token: token, next: tr}, Timeout: base.Timeout}
	return &peer{name: gatewayPeer, url: sc.url, pid: sc.cmd.Process.Pid, client: client, stop: func() {
		sc.stop()
		is.Close()
		_ = os.RemoveAll(dir)
	}}, nil
}

// bearer adds the end user's token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// benchTB lets the bench use the test issuer and certificates outside a test: a failure panics with the
// benchTB, which startGatewayPeer recovers into its error; the issuer is closed by the peer's stop.
type benchTB struct{ err error }

func (*benchTB) Helper()                          {}
func (*benchTB) Cleanup(func())                   {}
func (t *benchTB) Fatal(a ...any)                 { t.fail(fmt.Sprint(a...)) }
func (t *benchTB) Fatalf(format string, a ...any) { t.fail(fmt.Sprintf(format, a...)) }
func (t *benchTB) fail(msg string)                { t.err = fmt.Errorf("%s", strings.TrimSpace(msg)); panic(t) }

// gatewayFigures is the gateway's CPU per request with TLS from the client and a verified end user.
func gatewayFigures(byName map[string]*peerRun) []figure {
	gw := byName[gatewayPeer]
	if gw == nil {
		return nil
	}
	return []figure{{Name: "gateway CPU per request (TLS from the client, end-user JWT)", Value: float64(gw.perRequest()) / 1e3,
		Unit: "µs", Target: 150, Note: fmt.Sprintf("the plain sidecar in the same run: %s", us(byName["sidecar"].perRequest()))}}
}
