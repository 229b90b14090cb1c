// Package enduser authenticates the person a workload acts for: it verifies the OIDC JWT the app
// forwards (what the Anthropic SDKs send as "Authorization: Bearer" when given an auth token), and says
// who the user is and which scopes and groups the token carries.
//
// Verification follows go-oidc: one verifier per trusted issuer, built from the issuer's discovery
// document at startup (retried in the background while the issuer is unreachable), with the issuer's
// JWKS cached and refetched when a token names an unknown key. The sidecar adds what a gateway needs on
// top: several issuers (chosen by the token's iss), several audiences, a configurable clock skew, an
// allow-list of asymmetric algorithms, a cache of verified tokens so the hot path does not re-check
// signatures, and jti replay protection backed by the limit store.
//
// Errors never contain the token: they name the claim or check that failed.
package enduser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// ReplayStore remembers keys for a while. Once reports whether key was not seen within ttl before, and
// records it. The limit backends implement it, so replay state is shared like limits are.
type ReplayStore interface {
	Once(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

// Principal is a verified end user.
type Principal struct {
	Issuer string
	// Subject is the configured subject claim (default sub): the user in audit records.
	Subject string
	Scopes  []string
	Groups  []string
	Expiry  time.Time
	jti     string
}

// Key identifies the user for limits: the subject qualified by its issuer, since two issuers may hand
// out the same subject to different people.
func (p *Principal) Key() string { return p.Issuer + "#" + p.Subject }

// Failure is why a request's end-user token was refused, ready to be returned to the client.
type Failure struct {
	// Status is 401 for a bad or missing token and 503 when the sidecar cannot verify yet.
	Status int
	// Rule is the rule name for audit and metrics.
	Rule    string
	Message string
	// Revocation names the ClaudeRevocation that refused the token (Rule RuleRevoked), for audit.
	Revocation string
	// User is the verified user of a revoked token, for audit; nil for every other refusal.
	User *Principal
}

func (f *Failure) Error() string { return f.Message }

// Rule names.
const (
	RuleToken  = "endUser.token"
	RuleReplay = "endUser.replay"
)

// Options configure an Authenticator.
type Options struct {
	Config *policyconfig.EndUser
	// Replay stores seen jti values; required when Config.Replay is set.
	Replay ReplayStore
	// Revoked refuses revoked tokens and users; nil refuses none.
	Revoked *Revocations
	Log     *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// CacheSize bounds the verified-token cache; default 10,000.
	CacheSize int
}

// Authenticator verifies end-user tokens for one config. It is safe for concurrent use.
type Authenticator struct {
	cfg     *policyconfig.EndUser
	bearer  bool // the token comes as "Authorization: Bearer <token>"
	issuers map[string]*issuer
	replay  ReplayStore
	revoked *Revocations
	cache   *cache
	now     func() time.Time
	log     *slog.Logger
}

// New builds an Authenticator. Call Start to discover the issuers.
func New(o Options) (*Authenticator, error) {
	c := o.Config
	if c.Replay != nil && o.Replay == nil {
		return nil, errors.New("replay protection needs a replay store")
	}
	a := &Authenticator{
		cfg: c, replay: o.Replay, revoked: o.Revoked, log: o.Log, now: o.Now,
		bearer:  strings.EqualFold(c.Header, "Authorization"),
		issuers: map[string]*issuer{},
		cache:   newCache(o.CacheSize),
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	for _, ic := range c.Issuers {
		is, err := newIssuer(ic)
		if err != nil {
			return nil, err
		}
		a.issuers[ic.URL] = is
	}
	return a, nil
}

// Start discovers every issuer in the background; tokens of an issuer are refused with a 503 until its
// discovery succeeds. It returns at once.
func (a *Authenticator) Start(ctx context.Context) {
	for _, is := range a.issuers {
		go is.discover(ctx, a.log)
	}
}

// Ready reports whether every issuer has been discovered.
func (a *Authenticator) Ready() bool {
	for _, is := range a.issuers {
		if is.verifier.Load() == nil {
			return false
		}
	}
	return true
}

// Mode is the configured mode.
func (a *Authenticator) Mode() string { return a.cfg.Mode }

// Token returns the end-user token the request carries, "" when none.
//
// The Anthropic SDKs send an API key as "Authorization: Bearer" too (the newer ones always do), so in
// an injected pod that header holds the app's placeholder key when the app passes no user token: a
// bearer value that is not shaped like a JWT (three dot-separated base64url parts) is an API key, not
// an end-user token, whatever the placeholder's spelling.
func (a *Authenticator) Token(h http.Header) string {
	v := h.Get(a.cfg.Header)
	if a.bearer {
		scheme, tok, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return ""
		}
		tok = strings.TrimSpace(tok)
		if tok == wellknown.PlaceholderAPIKey || strings.HasPrefix(tok, "sk-ant-") || !jwtShaped(tok) {
			return ""
		}
		return tok
	}
	// A custom header may carry the bare token or the Bearer form.
	if scheme, tok, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return strings.TrimSpace(v)
}

// jwtShaped reports whether tok has a JWS compact serialization's shape: three dot-separated parts.
// Only the shape: a value with it is verified (and refused with the reason when it is bad); a value
// without it, such as an API key, is not an end-user token.
func jwtShaped(tok string) bool { return strings.Count(tok, ".") == 2 }

// Authenticate verifies the request's token. It returns (nil, nil) when there is no token and the mode
// allows that.
func (a *Authenticator) Authenticate(ctx context.Context, h http.Header) (*Principal, *Failure) {
	tok := a.Token(h)
	if tok == "" {
		if a.cfg.Mode != policyconfig.EndUserStrict {
			return nil, nil
		}
		if a.bearer && h.Get("Authorization") != "" {
			return nil, refused("an end-user token is required in the %s; it carries an API key or another value that is not a JWT", a.where())
		}
		return nil, refused("an end-user token is required in the %s", a.where())
	}
	now := a.now()
	p, ok := a.cache.get(tok, now)
	if !ok {
		var f *Failure
		if p, f = a.verify(ctx, tok, now); f != nil {
			return nil, f
		}
		a.cache.put(tok, p, p.Expiry.Add(a.cfg.ClockSkew.Duration), now)
	}
	// After the cache, so a cached token is refused once revoked; before replay protection, so a
	// revoked token does not use up its jti.
	if e, ok := a.revoked.Check(p, now); ok {
		f := revokedFailure(e)
		f.User = p
		return nil, f
	}
	if a.cfg.Replay != nil {
		if f := a.checkReplay(ctx, p, now); f != nil {
			return nil, f
		}
	}
	return p, nil
}

func (a *Authenticator) where() string {
	if a.bearer {
		return "Authorization header (Bearer scheme)"
	}
	return a.cfg.Header + " header"
}

func refused(format string, args ...any) *Failure {
	return &Failure{Status: http.StatusUnauthorized, Rule: RuleToken, Message: "claude-guard: end-user token refused: " + fmt.Sprintf(format, args...)}
}

// verify checks a token that is not in the cache.
func (a *Authenticator) verify(ctx context.Context, tok string, now time.Time) (*Principal, *Failure) {
	u, err := peek(tok)
	if err != nil {
		return nil, refused("%v", err)
	}
	is := a.issuers[u.iss]
	if is == nil {
		return nil, refused("issuer %q is not trusted by this policy", clip(u.iss))
	}
	if !slices.Contains(is.algs, u.header.Alg) {
		return nil, refused("signing algorithm %q is not allowed for issuer %q (allowed: %s)", clip(u.header.Alg), is.url, strings.Join(is.algs, ", "))
	}
	v := is.verifier.Load()
	if v == nil {
		return nil, &Failure{Status: http.StatusServiceUnavailable, Rule: RuleToken,
			Message: fmt.Sprintf("claude-guard: cannot verify end-user tokens of issuer %q yet: %s", is.url, is.notReady())}
	}
	idt, err := v.Verify(ctx, tok)
	if err != nil {
		return nil, a.explain(err, is, u)
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		return nil, refused("claims are not a JSON object")
	}
	return a.check(c, is, now)
}

// explain turns a go-oidc error into a message that says which check failed (go-oidc's own errors can
// quote claim values but never the token).
func (a *Authenticator) explain(err error, is *issuer, u unverified) *Failure {
	switch {
	case isErr(err, errUnknownKey):
		return refused("signing key %q is not published by issuer %q", clip(u.header.Kid), is.url)
	case isErr(err, errBadSignature):
		return refused("signature is invalid for issuer %q", is.url)
	case strings.Contains(err.Error(), "malformed"):
		return refused("token is malformed")
	case strings.Contains(err.Error(), "failed to fetch"):
		return &Failure{Status: http.StatusServiceUnavailable, Rule: RuleToken,
			Message: fmt.Sprintf("claude-guard: cannot fetch the signing keys of issuer %q", is.url)}
	}
	a.log.Debug("End-user token verification failed", "issuer", is.url, "error", err.Error())
	return refused("verification failed for issuer %q", is.url)
}

// check applies the claim checks go-oidc leaves to us: audience, expiry and not-before with skew.
func (a *Authenticator) check(c claims, is *issuer, now time.Time) (*Principal, *Failure) {
	skew := a.cfg.ClockSkew.Duration
	aud := c.audiences()
	if !slices.ContainsFunc(aud, func(s string) bool { return slices.Contains(is.audiences, s) }) {
		return nil, refused("audience %s is not accepted for issuer %q (accepted: %s)", quoteAll(aud), is.url, strings.Join(is.audiences, ", "))
	}
	exp, ok := c.numericDate("exp")
	if !ok {
		return nil, refused("the exp claim is missing")
	}
	if now.After(exp.Add(skew)) {
		return nil, refused("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok := c.numericDate("nbf"); ok && now.Add(skew).Before(nbf) {
		return nil, refused("token is not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	sub := c.str(a.cfg.SubjectClaim)
	if sub == "" {
		return nil, refused("the %s claim is missing", a.cfg.SubjectClaim)
	}
	return &Principal{
		Issuer: is.url, Subject: sub, Expiry: exp, jti: c.str("jti"),
		Scopes: c.scopes(), Groups: c.strings(a.cfg.GroupsClaim, false),
	}, nil
}

// checkReplay accepts a jti once per window (or until the token expires).
func (a *Authenticator) checkReplay(ctx context.Context, p *Principal, now time.Time) *Failure {
	if p.jti == "" {
		return refused("the jti claim is missing and replay protection requires it")
	}
	ttl := a.cfg.Replay.Window.Duration
	if untilExp := p.Expiry.Add(a.cfg.ClockSkew.Duration).Sub(now); ttl == 0 || ttl > untilExp {
		ttl = untilExp
	}
	first, err := a.replay.Once(ctx, "jti:"+p.Issuer+"#"+p.jti, max(ttl, time.Second))
	if err != nil {
		// The store (the limit backend) logs an outage once; a line per request would flood the log.
		a.log.Debug("Replay store unavailable, refusing the end-user token", "error", err.Error())
		return &Failure{Status: http.StatusServiceUnavailable, Rule: RuleReplay, Message: "claude-guard: the replay protection store is unavailable"}
	}
	if !first {
		return &Failure{Status: http.StatusUnauthorized, Rule: RuleReplay,
			Message: "claude-guard: end-user token refused: it was already used (jti seen before; replay protection is on)"}
	}
	return nil
}

// clip bounds a token-chosen string in a message.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

func quoteAll(ss []string) string {
	if len(ss) == 0 {
		return "(none)"
	}
	b, _ := json.Marshal(ss)
	return clip(string(b))
}
