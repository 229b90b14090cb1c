// Package oidctest runs a real OIDC issuer for tests: an HTTPS server on 127.0.0.1 serving the
// discovery document and a JWKS, and signing tokens with its RSA keys. Tests use it to drive the
// sidecar's end-user verification end to end (discovery, key fetch, key rotation) and to forge the bad
// tokens the verifier must refuse.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/claude-guard/claude-guard/sidecar/enduser"
)

// Issuer is a running test issuer.
type Issuer struct {
	// URL is the issuer URL (https://127.0.0.1:port).
	URL string
	// CACert is the PEM certificate that verifies the issuer's TLS.
	CACert string
	// JWKSFetches counts key set downloads.
	JWKSFetches atomic.Int64

	srv *httptest.Server

	mu        sync.Mutex
	keys      []*rsa.PrivateKey // keys[0] signs; every key is published
	published int               // how many of keys are in the JWKS
	seq       int
}

// Start starts an issuer with one signing key; it stops when the test ends.
func Start(t TB) *Issuer {
	t.Helper()
	is := &Issuer{}
	is.srv = httptest.NewTLSServer(http.HandlerFunc(is.serve))
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	is.CACert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw}))
	is.Rotate()
	return is
}

// Rotate adds a new signing key and publishes it (old keys stay published).
func (is *Issuer) Rotate() {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	is.mu.Lock()
	is.keys = append([]*rsa.PrivateKey{k}, is.keys...)
	is.published = len(is.keys)
	is.mu.Unlock()
}

// Close stops serving (an unreachable issuer).
func (is *Issuer) Close() { is.srv.Close() }

func (is *Issuer) kid(i int) string { return fmt.Sprintf("key-%d", len(is.keys)-1-i) }

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.URL, "jwks_uri": is.URL + "/jwks", "authorization_endpoint": is.URL + "/authorize",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case "/jwks":
		is.JWKSFetches.Add(1)
		is.mu.Lock()
		set := jose.JSONWebKeySet{}
		for i := 0; i < is.published; i++ {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &is.keys[i].PublicKey, KeyID: is.kid(i), Algorithm: "RS256", Use: "sig"})
		}
		is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// Claims returns valid claims for subject: this issuer, audience aud, issued now, valid for an hour,
// with a fresh jti.
func (is *Issuer) Claims(subject, aud string, scopes ...string) map[string]any {
	is.mu.Lock()
	is.seq++
	n := is.seq
	is.mu.Unlock()
	now := time.Now()
	c := map[string]any{
		"iss": is.URL, "sub": subject, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "jti": fmt.Sprintf("jti-%d-%d", now.UnixNano(), n),
	}
	if len(scopes) > 0 {
		s := ""
		for i, sc := range scopes {
			if i > 0 {
				s += " "
			}
			s += sc
		}
		c["scope"] = s
	}
	return c
}

// Sign signs claims with the current key (RS256).
func (is *Issuer) Sign(claims map[string]any) string {
	is.mu.Lock()
	k, kid := is.keys[0], is.kid(0)
	is.mu.Unlock()
	return sign(jose.SigningKey{Algorithm: jose.RS256, Key: k}, kid, claims)
}

// SignWithUnpublishedKey signs with a key the JWKS does not list (an unknown kid).
func (is *Issuer) SignWithUnpublishedKey(claims map[string]any) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return sign(jose.SigningKey{Algorithm: jose.RS256, Key: k}, "not-published", claims)
}

// SignWithForeignKeyAndKnownKid signs with a different RSA key but names a published kid: the
// signature cannot verify.
func (is *Issuer) SignWithForeignKeyAndKnownKid(claims map[string]any) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	is.mu.Lock()
	kid := is.kid(0)
	is.mu.Unlock()
	return sign(jose.SigningKey{Algorithm: jose.RS256, Key: k}, kid, claims)
}

// SignHMACWithPublicKey is the classic algorithm-confusion forgery: HS256 with the issuer's public key
// (as published, PEM-encoded) used as the HMAC secret.
func (is *Issuer) SignHMACWithPublicKey(claims map[string]any) string {
	is.mu.Lock()
	pub, kid := &is.keys[0].PublicKey, is.kid(0)
	is.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return sign(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, kid, claims)
}

// Unsigned returns an "alg": "none" token.
func Unsigned(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

func sign(key jose.SigningKey, kid string, claims map[string]any) string {
	s, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}

// TB is the part of testing.TB the helpers need.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(string, ...any)
}

// StartAuthenticator builds an authenticator from o, starts it until the test ends and waits (up to 10 s)
// until every issuer is discovered, as a sidecar's readiness does.
func StartAuthenticator(t TB, o enduser.Options) *enduser.Authenticator {
	t.Helper()
	a, err := enduser.New(o)
	if err != nil {
		t.Fatalf("enduser.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a.Start(ctx)
	for deadline := time.Now().Add(10 * time.Second); !a.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the OIDC issuers were not discovered")
		}
	}
	return a
}
