// Package identity gives a workload its SPIFFE identity from the Workload API: one long-lived X.509
// source and one JWT source, built once, kept current by the agent (rotation needs no restart), and
// checked against the identity the pod is supposed to have. The sidecar and the manager's Redis
// credential broker both use it, so it links no Kubernetes library (.golangci.yml).
package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// ErrNotReady is returned until the first SVID has arrived and passed the checks.
var ErrNotReady = errors.New("no SPIFFE identity yet")

// Expected is the identity a pod must have: spiffe://<TrustDomain>/ns/<Namespace>/sa/<ServiceAccount>.
// An empty ServiceAccount (standalone use) checks the trust domain and namespace only.
type Expected struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// Parse returns the identity id names, which must have the form
// spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
func Parse(id spiffeid.ID) (Expected, error) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[1] == "" || parts[2] != "sa" || parts[3] == "" {
		return Expected{}, fmt.Errorf("SPIFFE ID %s does not have the form spiffe://<trust domain>/ns/<namespace>/sa/<service account>", id)
	}
	return Expected{TrustDomain: id.TrustDomain().Name(), Namespace: parts[1], ServiceAccount: parts[3]}, nil
}

// String is the SPIFFE ID of a complete identity (one with a ServiceAccount).
func (e Expected) String() string {
	return "spiffe://" + e.TrustDomain + "/ns/" + e.Namespace + "/sa/" + e.ServiceAccount
}

// Check reports why id is not the expected identity, or nil.
func (e Expected) Check(id spiffeid.ID) error {
	if id.TrustDomain().Name() != e.TrustDomain {
		return fmt.Errorf("SVID %s is not in trust domain %q", id, e.TrustDomain)
	}
	want := "/ns/" + e.Namespace + "/sa/" + e.ServiceAccount
	if e.ServiceAccount == "" {
		prefix := "/ns/" + e.Namespace + "/sa/"
		if len(id.Path()) <= len(prefix) || id.Path()[:len(prefix)] != prefix {
			return fmt.Errorf("SVID %s does not name namespace %q (want path %s<service-account>)", id, e.Namespace, prefix)
		}
		return nil
	}
	if id.Path() != want {
		return fmt.Errorf("SVID %s is not this pod's identity (want path %s)", id, want)
	}
	return nil
}

// Provider holds the sources once the Workload API has answered.
type Provider struct {
	want Expected
	log  *slog.Logger

	mu   sync.RWMutex
	x509 *workloadapi.X509Source
	jwt  *workloadapi.JWTSource
	id   spiffeid.ID
	err  error
}

// Start connects to the Workload API at addr (e.g. "unix:///spiffe-workload-api/spire-agent.sock") in the
// background, retrying with backoff until the agent answers; Ready reports progress. Close releases it.
func Start(ctx context.Context, addr string, want Expected, log *slog.Logger) *Provider {
	p := &Provider{want: want, log: log, err: ErrNotReady}
	go p.connect(ctx, addr)
	return p
}

func (p *Provider) connect(ctx context.Context, addr string) {
	opts := workloadapi.WithClientOptions(workloadapi.WithAddr(addr))
	// A workload may be issued several SVIDs (several registration entries select it): use the one
	// that is this pod's identity, not whichever the agent lists first.
	pick := workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
		for _, s := range svids {
			if p.want.Check(s.ID) == nil {
				return s
			}
		}
		return svids[0]
	})
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
		x, err := workloadapi.NewX509Source(attempt, opts, pick)
		cancel()
		if err == nil {
			if err = p.adopt(ctx, x, opts); err == nil {
				return
			}
			_ = x.Close()
		}
		p.setErr(fmt.Errorf("failed to get an X.509-SVID from the Workload API at %s: %w", addr, err))
		p.log.Warn("Waiting for the SPIFFE Workload API", "addr", addr, "error", err.Error(), "retryIn", backoff.String())
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// adopt checks the first SVID and, if it is the expected identity, opens the JWT source too.
func (p *Provider) adopt(ctx context.Context, x *workloadapi.X509Source, opts workloadapi.SourceOption) error {
	svid, err := x.GetX509SVID()
	if err != nil {
		return err
	}
	if err := p.want.Check(svid.ID); err != nil {
		// A wrong identity is a configuration error, not a transient one, but the registration may be
		// fixed without restarting the pod, so keep retrying and keep saying why.
		return err
	}
	j, err := workloadapi.NewJWTSource(ctx, opts)
	if err != nil {
		return fmt.Errorf("failed to open the JWT-SVID source: %w", err)
	}
	p.mu.Lock()
	p.x509, p.jwt, p.id, p.err = x, j, svid.ID, nil
	p.mu.Unlock()
	p.log.Info("Got SPIFFE identity", "spiffeID", svid.ID.String(), "expires", svid.Certificates[0].NotAfter)
	return nil
}

func (p *Provider) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// Ready returns nil once the workload has its expected identity.
func (p *Provider) Ready() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.err
}

// ID is the workload's SPIFFE ID, or "" before Ready.
func (p *Provider) ID() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.err != nil {
		return ""
	}
	return p.id.String()
}

// ClientCertificate presents the current X.509-SVID in a TLS handshake (tls.Config.GetClientCertificate),
// so connections always use the latest rotated certificate.
func (p *Provider) ClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	svid, err := p.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("failed to get the X.509-SVID: %w", err)
	}
	if err := p.want.Check(svid.ID); err != nil {
		return nil, err
	}
	cert := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, c := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// GetX509SVID implements x509svid.Source with the current SVID, so go-spiffe's tlsconfig can present it
// as a server certificate (gateway mode).
func (p *Provider) GetX509SVID() (*x509svid.SVID, error) {
	x, err := p.x509Source()
	if err != nil {
		return nil, err
	}
	return x.GetX509SVID()
}

// x509Source returns the X.509 source once the workload has its expected identity.
func (p *Provider) x509Source() (*workloadapi.X509Source, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.x509, p.err
}

// GetX509BundleForTrustDomain implements x509bundle.Source, so go-spiffe's tlsconfig can verify peers'
// SVIDs against the bundles the Workload API delivers (gateway mode with mTLS).
func (p *Provider) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	x, err := p.x509Source()
	if err != nil {
		return nil, err
	}
	return x.GetX509BundleForTrustDomain(td)
}

// JWT returns a JWT-SVID for audience.
func (p *Provider) JWT(ctx context.Context, audience string) (string, error) {
	p.mu.RLock()
	j, id, err := p.jwt, p.id, p.err
	p.mu.RUnlock()
	if err != nil {
		return "", err
	}
	// Subject picks this pod's identity when the workload is issued several.
	svid, err := j.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience, Subject: id})
	if err != nil {
		return "", fmt.Errorf("failed to fetch a JWT-SVID for audience %q: %w", audience, err)
	}
	if err := p.want.Check(svid.ID); err != nil {
		return "", err
	}
	return svid.Marshal(), nil
}

// Close releases the Workload API connections.
func (p *Provider) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.x509 != nil {
		_ = p.x509.Close()
	}
	if p.jwt != nil {
		_ = p.jwt.Close()
	}
}
