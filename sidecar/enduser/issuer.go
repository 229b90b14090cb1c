package enduser

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// issuer is one trusted OIDC issuer: its verifier appears once discovery has succeeded.
type issuer struct {
	url       string
	audiences []string
	algs      []string
	client    *http.Client
	verifier  atomic.Pointer[oidc.IDTokenVerifier]
	lastErr   atomic.Pointer[string]
}

func newIssuer(c policyconfig.Issuer) (*issuer, error) {
	client, err := httpClient(c.CACert)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", c.URL, err)
	}
	return &issuer{url: c.URL, audiences: c.Audiences, algs: c.Algorithms, client: client}, nil
}

// httpClient trusts the system roots plus caPEM, with timeouts: discovery and JWKS fetches must never
// hang a request.
func httpClient(caPEM string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caPEM != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("caCert holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// discover fetches the issuer's discovery document and builds its verifier, retrying with backoff
// until it succeeds or ctx ends. go-oidc checks that the document names the same issuer.
func (is *issuer) discover(ctx context.Context, log *slog.Logger) {
	backoff := 500 * time.Millisecond
	for {
		err := is.discoverOnce(ctx)
		if err == nil {
			log.Info("OIDC issuer discovered", "issuer", is.url)
			return
		}
		msg := err.Error()
		is.lastErr.Store(&msg)
		log.Warn("OIDC issuer discovery failed; retrying", "issuer", is.url, "error", msg, "retryIn", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (is *issuer) discoverOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, is.client), 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, is.url)
	if err != nil {
		return err
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
		return errors.New("the discovery document has no jwks_uri")
	}
	ks := newKeySet(meta.JWKSURI, is.client, is.algs)
	// Audience, expiry and not-before are checked by the caller: go-oidc accepts one client ID and a
	// fixed five-minute not-before leeway, and we need a list and a configurable skew.
	is.verifier.Store(oidc.NewVerifier(is.url, ks, &oidc.Config{
		SkipClientIDCheck:    true,
		SkipExpiryCheck:      true,
		SupportedSigningAlgs: is.algs,
	}))
	return nil
}

// notReady explains why the issuer cannot verify yet.
func (is *issuer) notReady() string {
	if e := is.lastErr.Load(); e != nil {
		return "discovery failed: " + *e
	}
	return "discovery has not completed"
}
