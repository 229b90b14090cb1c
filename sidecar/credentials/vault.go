package credentials

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// SVIDs is the workload identity the cert and jwt auth methods log in with (internal/identity.Provider).
type SVIDs interface {
	ClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	JWT(ctx context.Context, audience string) (string, error)
}

// VaultOptions configure a Vault source.
type VaultOptions struct {
	Address string
	// CACert is the PEM bundle that verifies Vault's TLS certificate; empty uses the system roots.
	CACert []byte
	// AuthMethod is cert, jwt or kubernetes; AuthMount its mount path.
	AuthMethod, AuthMount, Role string
	// Audience of the JWT-SVID (jwt method).
	Audience string
	// TokenFile holds the projected service-account token (kubernetes method).
	TokenFile string
	// Mount, Path and Field locate the key in KV v2.
	Mount, Path, Field string
	// RefreshInterval is how often the key is re-read; MaxStaleness how long the last key keeps serving
	// while Vault cannot be read.
	RefreshInterval, MaxStaleness time.Duration
	Identity                      SVIDs
	Log                           *slog.Logger
	// OnRead, when set, is told the outcome of every attempt to read the key (metrics).
	OnRead func(err error)
}

// Vault reads the key from Vault's KV v2 after logging in with the workload's identity. Run keeps the
// token renewed (re-logging in when renewal ends) and re-reads the key every RefreshInterval and at once
// after Invalidate. Requests in flight during a rotation keep the key they got; new ones get the new key.
// If Vault cannot be read, the last key keeps serving for MaxStaleness, then Get fails closed.
type Vault struct {
	o       VaultOptions
	client  *vault.Client
	refresh chan struct{}
	now     func() time.Time

	mu      sync.RWMutex
	key     string
	readAt  time.Time
	lastErr error
}

// NewVault builds the client; nothing is contacted until Run.
func NewVault(o VaultOptions) (*Vault, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = o.Address
	cfg.Timeout = 10 * time.Second
	cfg.MaxRetries = 0 // Run retries with its own backoff
	tr, ok := cfg.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, errors.New("unexpected Vault client transport")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(o.CACert) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CACert) {
			return nil, errors.New("the Vault CA bundle holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	if o.AuthMethod == "cert" {
		if o.Identity == nil {
			return nil, errors.New("Vault cert auth needs a SPIFFE identity")
		}
		tlsCfg.GetClientCertificate = o.Identity.ClientCertificate
	}
	tr.TLSClientConfig = tlsCfg
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create Vault client: %w", err)
	}
	c.ClearToken() // never pick up VAULT_TOKEN from the environment
	if o.AuthMount == "" {
		o.AuthMount = o.AuthMethod
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Vault{o: o, client: c, refresh: make(chan struct{}, 1), now: time.Now}, nil
}

// SetOnRead sets the callback told the outcome of every read; call it before Run.
func (v *Vault) SetOnRead(f func(err error)) { v.o.OnRead = f }

// Get returns the last key read, unless it is older than MaxStaleness.
func (v *Vault) Get(context.Context) (string, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	cause := v.lastErr
	if cause == nil {
		cause = errors.New("no read attempted")
	}
	switch {
	case v.key == "":
		return "", fmt.Errorf("no API key read from Vault yet (%w): %w", cause, ErrNoCredential)
	case v.now().Sub(v.readAt) > v.o.MaxStaleness:
		return "", fmt.Errorf("the API key was last read from Vault %s ago, beyond the maximum staleness %s (%w): %w",
			v.now().Sub(v.readAt).Round(time.Second), v.o.MaxStaleness, cause, ErrNoCredential)
	}
	return v.key, nil
}

// Invalidate asks Run to re-read the key now (after an upstream 401).
func (v *Vault) Invalidate() {
	select {
	case v.refresh <- struct{}{}:
	default:
	}
}

// Run logs in, keeps the token alive and the key fresh until ctx ends.
func (v *Vault) Run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		v.awaitIdentity(ctx)
		err := v.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			v.o.Log.Warn("Vault session ended", "error", err.Error(), "retryIn", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
}

// identityPoll is how often Run looks whether the workload's SVID has arrived before it logs in.
const identityPoll = 100 * time.Millisecond

// awaitIdentity waits until the identity the cert and jwt methods log in with is ready (an identity
// that says so: internal/identity.Provider). A new pod's SVID arrives seconds after the sidecar starts,
// once its registration entry reaches the SPIRE agent; logging in before that would fail and grow the
// retry backoff, delaying the first key read by up to the whole backoff (15 s measured) after the SVID.
func (v *Vault) awaitIdentity(ctx context.Context) {
	r, ok := v.o.Identity.(interface{ Ready() error })
	if !ok || v.o.AuthMethod == "kubernetes" {
		return
	}
	t := time.NewTicker(identityPoll)
	defer t.Stop()
	for r.Ready() != nil {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// session logs in once and serves reads until the token can no longer be renewed.
func (v *Vault) session(ctx context.Context) error {
	secret, err := v.login(ctx)
	if err != nil {
		v.recordErr(err)
		return err
	}
	watcher, err := v.client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		return fmt.Errorf("failed to watch the Vault token: %w", err)
	}
	go watcher.Start()
	defer watcher.Stop()
	if err := v.read(ctx); err != nil && isAuthError(err) {
		return err
	}
	tick := time.NewTicker(v.o.RefreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-watcher.DoneCh():
			// Renewal ended (max TTL reached or the token was revoked): log in again.
			if err != nil {
				return fmt.Errorf("failed to renew the Vault token: %w", err)
			}
			return nil
		case <-watcher.RenewCh():
		case <-tick.C:
			if err := v.read(ctx); err != nil && isAuthError(err) {
				return err
			}
		case <-v.refresh:
			if err := v.read(ctx); err != nil && isAuthError(err) {
				return err
			}
		}
	}
}

func (v *Vault) login(ctx context.Context) (*vault.Secret, error) {
	body := map[string]any{}
	switch v.o.AuthMethod {
	case "cert":
		body["name"] = v.o.Role
	case "jwt":
		jwt, err := v.o.Identity.JWT(ctx, v.o.Audience)
		if err != nil {
			return nil, err
		}
		body["role"], body["jwt"] = v.o.Role, jwt
	case "kubernetes":
		b, err := os.ReadFile(v.o.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read the service-account token: %w", err)
		}
		body["role"], body["jwt"] = v.o.Role, strings.TrimSpace(string(b))
	default:
		return nil, fmt.Errorf("unknown Vault auth method %q", v.o.AuthMethod)
	}
	secret, err := v.client.Logical().WriteWithContext(ctx, "auth/"+v.o.AuthMount+"/login", body)
	if err != nil {
		return nil, fmt.Errorf("failed to log in to Vault with %s auth as role %q: %w", v.o.AuthMethod, v.o.Role, err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, fmt.Errorf("Vault %s login as role %q returned no token", v.o.AuthMethod, v.o.Role)
	}
	v.client.SetToken(secret.Auth.ClientToken)
	v.o.Log.Info("Logged in to Vault", "method", v.o.AuthMethod, "role", v.o.Role, "ttl", secret.Auth.LeaseDuration)
	return secret, nil
}

// read fetches the key and swaps it in; on failure the previous key stays.
func (v *Vault) read(ctx context.Context) error {
	err := v.readOnce(ctx)
	if v.o.OnRead != nil {
		v.o.OnRead(err)
	}
	if err != nil {
		v.recordErr(err)
		v.o.Log.Warn("Failed to read the API key from Vault; the last key keeps serving", "path", v.o.Mount+"/"+v.o.Path, "error", err.Error())
	}
	return err
}

func (v *Vault) readOnce(ctx context.Context) error {
	s, err := v.client.KVv2(v.o.Mount).Get(ctx, v.o.Path)
	if err != nil {
		return fmt.Errorf("failed to read %s/%s: %w", v.o.Mount, v.o.Path, err)
	}
	key, _ := s.Data[v.o.Field].(string)
	key = strings.TrimSpace(key)
	if key == "" {
		return fmt.Errorf("secret %s/%s has no non-empty string field %q", v.o.Mount, v.o.Path, v.o.Field)
	}
	v.mu.Lock()
	changed := v.key != "" && v.key != key
	v.key, v.readAt, v.lastErr = key, v.now(), nil
	v.mu.Unlock()
	if changed {
		v.o.Log.Info("Rotated the API key read from Vault", "path", v.o.Mount+"/"+v.o.Path)
	}
	return nil
}

func (v *Vault) recordErr(err error) {
	v.mu.Lock()
	v.lastErr = err
	v.mu.Unlock()
}

// isAuthError reports whether err means the token no longer works, so the session must log in again.
func isAuthError(err error) bool {
	var re *vault.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized)
}
