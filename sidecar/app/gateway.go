package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/claude-guard/claude-guard/internal/identity"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// Gateway mode runs the sidecar as a shared Deployment behind a Service for callers outside its pod
// (other workloads, other clusters, browsers). Nothing about the caller is trusted from the network:
//   - the listener speaks TLS only (a certificate from files, e.g. a cert-manager Secret, reloaded when
//     it changes; or the gateway's own X.509-SVID);
//   - every request needs a valid end-user JWT (the policy's endUser.mode must be Strict);
//   - optionally, callers must present an X.509-SVID of a trust domain (mTLS, verified with go-spiffe
//     against the bundles the Workload API delivers); their SPIFFE ID then keys Workload limits and is
//     the workload in audit records.

// checkGateway refuses configs a gateway must not run with.
// gatewayEndUsers refuses, in gateway mode, a config that does not require an end-user token: the
// Watcher applies it to every reload too, so a reload that would drop or weaken the requirement is
// refused and the config in force stays (logged, claude_guard_config_reloads_total{result="failure"}).
func gatewayEndUsers(o *Options, c *policyconfig.Config) error {
	if o.Gateway && c.Deny == nil && (c.EndUser == nil || c.EndUser.Mode != policyconfig.EndUserStrict) {
		return errors.New("gateway mode requires endUser.mode Strict: callers outside the pod are trusted only through their end-user token")
	}
	return nil
}

func checkGateway(o *Options, c *policyconfig.Config) error {
	if !o.Gateway {
		return nil
	}
	if o.TLSCertFile == "" && o.ClientTrustDomain == "" {
		return errors.New("gateway mode requires TLS: set --tls-cert-file and --tls-key-file, or --client-trust-domain to serve the gateway's own SVID")
	}
	return nil
}

// serverTLS returns the listener's TLS config, nil for plain HTTP (sidecar mode).
func serverTLS(o *Options, id *identity.Provider) (*tls.Config, error) {
	if o.TLSCertFile == "" && o.ClientTrustDomain == "" {
		return nil, nil
	}
	var td spiffeid.TrustDomain
	if o.ClientTrustDomain != "" {
		if id == nil {
			return nil, errors.New("--client-trust-domain needs the SPIFFE Workload API: set identity.trustDomain in the config and " + wellknown.EnvSPIFFESocket)
		}
		var err error
		if td, err = spiffeid.TrustDomainFromString(o.ClientTrustDomain); err != nil {
			return nil, fmt.Errorf("--client-trust-domain: %w", err)
		}
	}
	if o.TLSCertFile == "" {
		return tlsconfig.MTLSServerConfig(id, id, tlsconfig.AuthorizeMemberOf(td)), nil
	}
	kp, err := newKeyPairFiles(o.TLSCertFile, o.TLSKeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}
	if o.ClientTrustDomain != "" {
		// What go-spiffe's MTLSWebServerConfig sets, with a certificate that is reloaded instead of fixed.
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyPeerCertificate = tlsconfig.VerifyPeerCertificate(id, tlsconfig.AuthorizeMemberOf(td))
	}
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg, nil
}

// callerID returns the SPIFFE ID of the client certificate of an mTLS request ("" without one). The
// certificate was verified by the handshake.
func callerID(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
	if err != nil {
		return ""
	}
	return id.String()
}

// keyPairFiles serves a certificate from files and reloads it when they change (cert-manager renews a
// Secret in place), checking at most once a second.
type keyPairFiles struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

func newKeyPairFiles(certFile, keyFile string) (*keyPairFiles, error) {
	k := &keyPairFiles{certFile: certFile, keyFile: keyFile}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *keyPairFiles) load() error {
	st, err := os.Stat(k.certFile)
	if err != nil {
		return fmt.Errorf("failed to read the TLS certificate: %w", err)
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("failed to load the TLS key pair from %s and %s: %w", k.certFile, k.keyFile, err)
	}
	k.cert, k.modTime = &c, st.ModTime()
	return nil
}

func (k *keyPairFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); now.Sub(k.checked) >= time.Second {
		k.checked = now
		if st, err := os.Stat(k.certFile); err == nil && !st.ModTime().Equal(k.modTime) {
			// A half-written pair fails to load: keep serving the old one and try again later.
			_ = k.load()
		}
	}
	return k.cert, nil
}

// caller returns how the proxy learns the caller's identity: from its client SVID when mTLS is on.
func caller(o *Options) func(*http.Request) string {
	if o.ClientTrustDomain == "" {
		return nil
	}
	return callerID
}
