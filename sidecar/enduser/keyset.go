package enduser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// errUnknownKey means the token names a key the issuer does not publish, even after a refresh.
var errUnknownKey = errors.New("the signing key is not in the issuer's key set")

// keySet is the issuer's JWKS, fetched from its jwks_uri and cached. A token signed with a key id the
// cache does not hold triggers a refetch (the issuer rotated its keys), but at most once per
// minRefresh: otherwise every request carrying a made-up kid would make the sidecar call the issuer.
// It implements go-oidc's KeySet.
type keySet struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time

	mu      sync.RWMutex
	keys    []jose.JSONWebKey
	fetched time.Time // last successful fetch
	// forced is the last fetch made for a key id the cache did not hold (the throttled kind).
	forced time.Time

	fetchMu sync.Mutex // one fetch at a time; waiters reuse its result
}

func newKeySet(url string, client *http.Client, algs []string) *keySet {
	ks := &keySet{url: url, client: client, minRefresh: 10 * time.Second, maxAge: time.Hour, now: time.Now}
	for _, a := range algs {
		ks.algs = append(ks.algs, jose.SignatureAlgorithm(a))
	}
	return ks
}

// VerifySignature implements oidc.KeySet.
func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, ks.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, stale := ks.lookup(kid)
	if len(keys) == 0 || stale {
		if err := ks.refresh(ctx, kid, len(keys) == 0); err != nil && len(keys) == 0 {
			return nil, err
		}
		keys, _ = ks.lookup(kid)
	}
	if len(keys) == 0 {
		return nil, errUnknownKey
	}
	for _, k := range keys {
		if payload, err := jws.Verify(&k); err == nil {
			return payload, nil
		}
	}
	return nil, errBadSignature
}

var errBadSignature = errors.New("signature does not match the issuer's key")

// isErr reports whether err carries sentinel: go-oidc wraps KeySet errors with %v, which drops the chain.
func isErr(err, sentinel error) bool {
	return errors.Is(err, sentinel) || strings.Contains(err.Error(), sentinel.Error())
}

// lookup returns the cached keys matching kid (every key when the token names none) and whether the
// cache is old enough to be refreshed in passing.
func (ks *keySet) lookup(kid string) ([]jose.JSONWebKey, bool) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	var out []jose.JSONWebKey
	for _, k := range ks.keys {
		if kid == "" || k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out, ks.now().Sub(ks.fetched) > ks.maxAge
}

// refresh refetches the JWKS. unknownKid marks a fetch for a key id the cache does not hold: the first
// one is made at once (the issuer rotated its keys), the next ones at most once per minRefresh. A
// concurrent caller that waited for the fetch lock reuses the fetch it waited for.
func (ks *keySet) refresh(ctx context.Context, kid string, unknownKid bool) error {
	ks.fetchMu.Lock()
	defer ks.fetchMu.Unlock()
	if keys, stale := ks.lookup(kid); len(keys) > 0 && !stale {
		return nil // fetched while we waited
	}
	ks.mu.Lock()
	never := ks.fetched.IsZero()
	if unknownKid && !never {
		if ks.now().Sub(ks.forced) < ks.minRefresh {
			ks.mu.Unlock()
			return errUnknownKey
		}
		ks.forced = ks.now()
	}
	ks.mu.Unlock()
	keys, err := ks.fetch(ctx)
	if err != nil {
		return err
	}
	ks.mu.Lock()
	ks.keys, ks.fetched = keys, ks.now()
	ks.mu.Unlock()
	return nil
}

// maxJWKSBytes bounds the key set document.
const maxJWKSBytes = 1 << 20

func (ks *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build the JWKS request: %w", err)
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch the issuer's JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to fetch the issuer's JWKS: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("failed to read the issuer's JWKS: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("failed to decode the issuer's JWKS: %w", err)
	}
	// Only public keys verify tokens: a symmetric or private key in a JWKS is a misconfigured issuer.
	keys := set.Keys[:0]
	for _, k := range set.Keys {
		if k.Valid() && k.IsPublic() && (k.Use == "" || k.Use == "sig") {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
