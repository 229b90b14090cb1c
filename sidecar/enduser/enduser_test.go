package enduser_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

const aud = "claude-assistant"

// seen is a ReplayStore for unit tests; the limit backends' implementations are tested in sidecar/limits.
type seen struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (s *seen) Once(_ context.Context, key string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ttl <= 0 {
		panic("ttl must be positive")
	}
	if s.keys[key] {
		return false, nil
	}
	s.keys[key] = true
	return true, nil
}

func config(issuers ...*oidctest.Issuer) *policyconfig.EndUser {
	c := &policyconfig.EndUser{Mode: policyconfig.EndUserStrict, Replay: &policyconfig.Replay{}}
	for _, is := range issuers {
		c.Issuers = append(c.Issuers, policyconfig.Issuer{URL: is.URL, Audiences: []string{aud, "other"}, CACert: is.CACert})
	}
	full := &policyconfig.Config{APIVersion: policyconfig.APIVersion, Kind: policyconfig.Kind, EndUser: c}
	full.ApplyDefaults()
	return full.EndUser
}

func start(t *testing.T, c *policyconfig.EndUser) *enduser.Authenticator { return startB(t, c, 0) }

func startB(t testing.TB, c *policyconfig.EndUser, cacheSize int) *enduser.Authenticator {
	t.Helper()
	return oidctest.StartAuthenticator(t, enduser.Options{Config: c, Replay: &seen{keys: map[string]bool{}}, CacheSize: cacheSize})
}

func bearer(tok string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	return h
}

func TestValidTokenIsVerifiedAndCached(t *testing.T) {
	is := oidctest.Start(t)
	c := config(is)
	c.Replay = nil
	a := start(t, c)
	claims := is.Claims("alice", aud, "basic", "pro")
	claims["groups"] = []string{"eng"}
	tok := is.Sign(claims)
	p, f := a.Authenticate(context.Background(), bearer(tok))
	if f != nil {
		t.Fatalf("refused: %v", f)
	}
	if p.Subject != "alice" || p.Issuer != is.URL || strings.Join(p.Scopes, ",") != "basic,pro" || strings.Join(p.Groups, ",") != "eng" {
		t.Fatalf("principal = %+v", p)
	}
	fetches := is.JWKSFetches.Load()
	is.Close() // a cached token needs neither the issuer nor its keys
	for range 3 {
		if _, f := a.Authenticate(context.Background(), bearer(tok)); f != nil {
			t.Fatalf("cached token refused: %v", f)
		}
	}
	if got := is.JWKSFetches.Load(); got != fetches {
		t.Fatalf("JWKS fetched %d more times for a cached token", got-fetches)
	}
}

func TestScpListAndSubjectClaim(t *testing.T) {
	is := oidctest.Start(t)
	c := config(is)
	c.Replay, c.SubjectClaim, c.GroupsClaim = nil, "email", "roles"
	a := start(t, c)
	claims := is.Claims("u-1", aud)
	claims["scp"] = []string{"basic", "admin"}
	claims["email"] = "alice@example.com"
	claims["roles"] = "ops"
	p, f := a.Authenticate(context.Background(), bearer(is.Sign(claims)))
	if f != nil {
		t.Fatal(f)
	}
	if p.Subject != "alice@example.com" || strings.Join(p.Scopes, ",") != "basic,admin" || strings.Join(p.Groups, ",") != "ops" {
		t.Fatalf("principal = %+v", p)
	}
}

func TestBadTokensAreRefused(t *testing.T) {
	is := oidctest.Start(t)
	other := oidctest.Start(t) // trusted by nobody
	a := start(t, config(is))
	now := time.Now()
	with := func(edit func(map[string]any)) map[string]any {
		c := is.Claims("mallory", aud, "basic")
		edit(c)
		return c
	}
	replayed := is.Sign(is.Claims("bob", aud))
	if _, f := a.Authenticate(context.Background(), bearer(replayed)); f != nil {
		t.Fatalf("first use refused: %v", f)
	}
	cases := []struct {
		name, token string
		status      int
		want        string
	}{
		{"expired", is.Sign(with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), 401, "token expired at"},
		{"not yet valid", is.Sign(with(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() })), 401, "token is not valid before"},
		{"wrong issuer", other.Sign(other.Claims("mallory", aud)), 401, "is not trusted by this policy"},
		{"issuer claim lies about the signer", other.Sign(with(func(map[string]any) {})), 401, "signature is invalid"},
		{"wrong audience", is.Sign(with(func(c map[string]any) { c["aud"] = "someone-else" })), 401, `audience ["someone-else"] is not accepted`},
		{"no audience", is.Sign(with(func(c map[string]any) { delete(c, "aud") })), 401, "audience (none) is not accepted"},
		{"unknown kid", is.SignWithUnpublishedKey(with(func(map[string]any) {})), 401, `signing key "not-published" is not published`},
		{"bad signature", is.SignWithForeignKeyAndKnownKid(with(func(map[string]any) {})), 401, "signature is invalid"},
		{"tampered claims", tamper(is.Sign(with(func(map[string]any) {}))), 401, "signature is invalid"},
		{"alg none", oidctest.Unsigned(with(func(map[string]any) {})), 401, `signing algorithm "none" is not allowed`},
		{"HMAC with the public key", is.SignHMACWithPublicKey(with(func(map[string]any) {})), 401, `signing algorithm "HS256" is not allowed`},
		{"replayed jti", replayed, 401, "it was already used"},
		{"no jti", is.Sign(with(func(c map[string]any) { delete(c, "jti") })), 401, "the jti claim is missing"},
		{"no exp", is.Sign(with(func(c map[string]any) { delete(c, "exp") })), 401, "the exp claim is missing"},
		{"no subject", is.Sign(with(func(c map[string]any) { delete(c, "sub") })), 401, "the sub claim is missing"},
		{"not a JWT is an API key, not a token", "not-a-jwt", 401, "an end-user token is required in the Authorization header (Bearer scheme); it carries an API key or another value that is not a JWT"},
		{"malformed base64", "a.b.c", 401, "token is not a JWT"},
		{"missing", "", 401, "an end-user token is required in the Authorization header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.token != "" {
				h = bearer(tc.token)
			}
			p, f := a.Authenticate(context.Background(), h)
			if f == nil {
				t.Fatalf("accepted: %+v", p)
			}
			if f.Status != tc.status || !strings.Contains(f.Message, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", f.Status, f.Message, tc.status, tc.want)
			}
			if tc.token != "" && strings.Contains(f.Message, tc.token) {
				t.Fatal("the message contains the token")
			}
		})
	}
}

// tamper rewrites the claims (sub becomes "admin") and keeps the original header and signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		panic(err)
	}
	c["sub"] = "admin"
	raw, _ = json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func TestClockSkew(t *testing.T) {
	is := oidctest.Start(t)
	c := config(is)
	c.Replay = nil
	c.ClockSkew.Duration = 2 * time.Minute
	a := start(t, c)
	now := time.Now()
	cl := is.Claims("alice", aud)
	cl["exp"] = now.Add(-time.Minute).Unix()
	if _, f := a.Authenticate(context.Background(), bearer(is.Sign(cl))); f != nil {
		t.Fatalf("expired within the skew refused: %v", f)
	}
	cl = is.Claims("alice", aud)
	cl["nbf"] = now.Add(time.Minute).Unix()
	if _, f := a.Authenticate(context.Background(), bearer(is.Sign(cl))); f != nil {
		t.Fatalf("not-before within the skew refused: %v", f)
	}
}

func TestKeyRotationIsPickedUpOnUnknownKid(t *testing.T) {
	is := oidctest.Start(t)
	c := config(is)
	c.Replay = nil
	a := start(t, c)
	if _, f := a.Authenticate(context.Background(), bearer(is.Sign(is.Claims("a", aud)))); f != nil {
		t.Fatal(f)
	}
	is.Rotate()
	if _, f := a.Authenticate(context.Background(), bearer(is.Sign(is.Claims("a", aud)))); f != nil {
		t.Fatalf("token signed with the rotated key refused: %v", f)
	}
	// Made-up key ids do not make the sidecar refetch the JWKS on every request.
	before := is.JWKSFetches.Load()
	for range 20 {
		_, _ = a.Authenticate(context.Background(), bearer(is.SignWithUnpublishedKey(is.Claims("a", aud))))
	}
	if n := is.JWKSFetches.Load() - before; n > 1 {
		t.Fatalf("20 unknown-kid tokens caused %d JWKS fetches, want at most 1", n)
	}
}

func TestModes(t *testing.T) {
	is := oidctest.Start(t)
	c := config(is)
	c.Replay, c.Mode = nil, policyconfig.EndUserOptional
	a := start(t, c)
	if p, f := a.Authenticate(context.Background(), http.Header{}); p != nil || f != nil {
		t.Fatalf("optional without a token: %v %v", p, f)
	}
	// The SDKs send an API key as a bearer token too: the placeholder key is not an end-user token.
	if p, f := a.Authenticate(context.Background(), bearer("claude-guard-placeholder")); p != nil || f != nil {
		t.Fatalf("optional with the placeholder key: %v %v", p, f)
	}
	// So is any other value that is not shaped like a JWT ("dummy", a key of another vendor): it gets
	// the tokenless grant, never more.
	if p, f := a.Authenticate(context.Background(), bearer("dummy-placeholder")); p != nil || f != nil {
		t.Fatalf("optional with a non-JWT placeholder: %v %v", p, f)
	}
	if _, f := a.Authenticate(context.Background(), bearer("garbage.garbage.garbage")); f == nil {
		t.Fatal("optional mode accepted an invalid token: a token that is present is verified")
	}
	c2 := config(is)
	c2.Replay, c2.Header = nil, "X-User-Token"
	b := start(t, c2)
	h := http.Header{}
	h.Set("X-User-Token", is.Sign(is.Claims("carol", aud)))
	if p, f := b.Authenticate(context.Background(), h); f != nil || p.Subject != "carol" {
		t.Fatalf("custom header: %v %v", p, f)
	}
	if _, f := b.Authenticate(context.Background(), bearer(is.Sign(is.Claims("carol", aud)))); f == nil || !strings.Contains(f.Message, "X-User-Token header") {
		t.Fatalf("a token in Authorization must not satisfy a custom header: %v", f)
	}
}

func TestUnreachableIssuerGives503(t *testing.T) {
	is := oidctest.Start(t)
	c := config(is)
	c.Replay = nil
	is.Close()
	a, err := enduser.New(enduser.Options{Config: c})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.Start(ctx)
	time.Sleep(100 * time.Millisecond)
	_, f := a.Authenticate(ctx, bearer(oidctest.Unsigned(map[string]any{"iss": is.URL, "alg": "x"})))
	if f == nil {
		t.Fatal("accepted")
	}
	// alg is checked before discovery, so use a well-formed RS256 header for the 503 case.
	tok := is.Sign(is.Claims("a", aud))
	_, f = a.Authenticate(ctx, bearer(tok))
	if f == nil || f.Status != http.StatusServiceUnavailable || !strings.Contains(f.Message, "cannot verify end-user tokens of issuer") {
		t.Fatalf("got %+v", f)
	}
}

func TestSeveralIssuers(t *testing.T) {
	one, two := oidctest.Start(t), oidctest.Start(t)
	c := config(one, two)
	c.Replay = nil
	a := start(t, c)
	for _, is := range []*oidctest.Issuer{one, two} {
		p, f := a.Authenticate(context.Background(), bearer(is.Sign(is.Claims("same-sub", aud))))
		if f != nil {
			t.Fatal(f)
		}
		if p.Issuer != is.URL {
			t.Fatalf("issuer %s", p.Issuer)
		}
	}
	p1, _ := a.Authenticate(context.Background(), bearer(one.Sign(one.Claims("same-sub", aud))))
	p2, _ := a.Authenticate(context.Background(), bearer(two.Sign(two.Claims("same-sub", aud))))
	if p1.Key() == p2.Key() {
		t.Fatal("the same subject at two issuers must be two users for limits")
	}
}
