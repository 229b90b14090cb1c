package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// Wire contract of Anthropic workload identity federation: the OAuth 2.0 jwt-bearer grant (RFC 7523)
// at the token endpoint; the access token is then sent as a bearer token with the OAuth beta.
const (
	// TokenPath is the token endpoint under the API base URL.
	TokenPath = policyconfig.FederationTokenPath
	// OAuthBeta must accompany API requests authenticated with an OAuth access token.
	OAuthBeta = "oauth-2025-04-20"
	// federationBeta accompanies the exchange itself.
	federationBeta = OAuthBeta + ",oidc-federation-2026-04-01"
	grantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	// Refresh this long before the token expires; refuse to use it this close to expiry.
	wifRefreshAhead = 2 * time.Minute
	wifUsableUntil  = 30 * time.Second
)

// BearerSource is a Source whose credential is an OAuth access token, sent upstream as
// "Authorization: Bearer" with the OAuth beta instead of as x-api-key.
type BearerSource interface {
	Source
	Bearer() bool
}

// WIFOptions configure workload identity federation.
type WIFOptions struct {
	TokenURL                                                        string
	Audience                                                        string
	FederationRuleID, OrganizationID, ServiceAccountID, WorkspaceID string
	Identity                                                        SVIDs
	Client                                                          *http.Client
	Log                                                             *slog.Logger
}

// WIF keeps a short-lived Anthropic access token, exchanged for the workload's JWT-SVID and refreshed
// before it expires. Run does the exchanges; Get never blocks on the network.
type WIF struct {
	o       WIFOptions
	refresh chan struct{}
	now     func() time.Time

	mu      sync.RWMutex
	token   string
	expires time.Time
	lastErr error
}

// NewWIF returns a source; nothing is exchanged until Run.
func NewWIF(o WIFOptions) (*WIF, error) {
	if o.Identity == nil {
		return nil, errors.New("workload identity federation needs a SPIFFE identity (a JWT-SVID to exchange)")
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 15 * time.Second}
	}
	// The exchange posts the workload's JWT-SVID: a redirect (307 and 308 resend the body) would hand it
	// to a host nobody allowed. The 3xx itself is the answer, and an error.
	c := *o.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.Client = &c
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &WIF{o: o, refresh: make(chan struct{}, 1), now: time.Now}, nil
}

// Bearer marks the credential as an OAuth access token.
func (*WIF) Bearer() bool { return true }

// Get returns the current access token while it is comfortably valid.
func (w *WIF) Get(context.Context) (string, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.token == "" || w.now().Add(wifUsableUntil).After(w.expires) {
		cause := w.lastErr
		if cause == nil {
			cause = errors.New("no exchange yet")
		}
		return "", fmt.Errorf("no valid access token from workload identity federation (%w): %w", cause, ErrNoCredential)
	}
	return w.token, nil
}

// Invalidate drops the token the upstream rejected and asks Run for a new one now.
func (w *WIF) Invalidate() {
	w.mu.Lock()
	w.token = ""
	w.mu.Unlock()
	select {
	case w.refresh <- struct{}{}:
	default:
	}
}

// Run exchanges a token now and again before each one expires, until ctx ends.
func (w *WIF) Run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		var wait time.Duration
		if err := w.exchange(ctx); err != nil {
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
			w.o.Log.Warn("Workload identity federation exchange failed", "error", err.Error(), "retryIn", backoff.String())
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
			w.mu.RLock()
			wait = max(w.expires.Sub(w.now())-wifRefreshAhead, 5*time.Second)
			w.mu.RUnlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-w.refresh:
		case <-time.After(wait):
		}
	}
}

func (w *WIF) exchange(ctx context.Context) error {
	assertion, err := w.o.Identity.JWT(ctx, w.o.Audience)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{
		"grant_type": grantJWTBearer, "assertion": assertion,
		"federation_rule_id": w.o.FederationRuleID, "organization_id": w.o.OrganizationID,
		"service_account_id": w.o.ServiceAccountID, "workspace_id": w.o.WorkspaceID,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.TokenURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("failed to build the token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-beta", federationBeta)
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("failed to reach the token endpoint: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("failed to read the token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// The body explains the refusal; the assertion is ours and must not be echoed into logs.
		msg := strings.ReplaceAll(string(raw), assertion, "[assertion]")
		return fmt.Errorf("the token endpoint answered %d: %.300s", resp.StatusCode, msg)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil {
		return fmt.Errorf("failed to decode the token response: %w", err)
	}
	switch {
	case tok.AccessToken == "":
		return errors.New("the token response has no access_token")
	case tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "bearer"):
		return fmt.Errorf("the token response has token_type %q, want Bearer", tok.TokenType)
	case tok.ExpiresIn <= 0:
		return errors.New("the token response has no positive expires_in")
	}
	w.mu.Lock()
	w.token, w.expires, w.lastErr = tok.AccessToken, w.now().Add(time.Duration(tok.ExpiresIn)*time.Second), nil
	w.mu.Unlock()
	w.o.Log.Info("Exchanged a JWT-SVID for an Anthropic access token", "expiresIn", tok.ExpiresIn)
	return nil
}
