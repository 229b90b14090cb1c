package policyconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/claude-guard/claude-guard/internal/redisconn"

	"github.com/claude-guard/claude-guard/internal/glob"
)

// Validate checks a config (after ApplyDefaults) and returns every problem found, each naming its field.
func (c *Config) Validate() error {
	v := &validator{}
	if c.APIVersion != APIVersion {
		v.add("apiVersion", "must be %q, got %q", APIVersion, c.APIVersion)
	}
	if c.Kind != Kind {
		v.add("kind", "must be %q, got %q", Kind, c.Kind)
	}
	if c.Deny != nil && c.Deny.Reason == "" {
		v.add("deny.reason", "must not be empty")
	}
	v.url("server.upstream", c.Server.Upstream)
	if h := c.Server.MetricsTokenSHA256; h != "" {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			v.add("server.metricsTokenSHA256", "must be a hex SHA-256 (64 hex digits), got %d characters", len(h))
		}
	}
	v.credentials(c)
	for i, e := range c.Endpoints {
		if !strings.HasPrefix(e, "/") || strings.Contains(e, "..") || strings.ContainsAny(e, "?#") {
			v.add(fmt.Sprintf("endpoints[%d]", i), "must be an absolute path without query, fragment or \"..\", got %q", e)
		}
		if j := strings.Index(e, "*"); j >= 0 && j != len(e)-1 {
			v.add(fmt.Sprintf("endpoints[%d]", i), "'*' is only allowed as the last character, got %q", e)
		}
	}
	v.models(&c.Models)
	if c.MaxRequestBytes < 0 {
		v.add("maxRequestBytes", "must be positive, got %d", c.MaxRequestBytes)
	}
	if c.EndUser != nil {
		v.endUser(c.EndUser)
	}
	for i, r := range c.Revoked {
		if !validRevocationID(r.ID) {
			v.add(fmt.Sprintf("revoked[%d].id", i), "must be 32 lowercase hex digits (policyconfig.RevocationID), got %d characters", len(r.ID))
		}
		if r.Name == "" {
			v.add(fmt.Sprintf("revoked[%d].name", i), "must not be empty")
		}
	}
	v.limits(&c.Limits)
	for i, b := range c.Budgets {
		v.budget(fmt.Sprintf("budgets[%d]", i), b)
	}
	for i, p := range c.Prices {
		v.price(fmt.Sprintf("prices[%d]", i), p)
	}
	return v.err()
}

type validator struct{ errs []error }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid sidecar config: %w", errors.Join(v.errs...))
}

func (v *validator) url(field, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(field, "must be an http or https URL, got %q", s)
	}
}

func (v *validator) glob(field, p string) {
	if err := glob.Validate(p); err != nil {
		v.add(field, "%q is not a valid model glob: %v", p, err)
	}
}

var decimalRE = regexp.MustCompile(`^[0-9]{1,12}(\.[0-9]{1,6})?$`)

// price checks one price entry: a model glob, the standard tier's input and output, and every other
// amount that is set.
func (v *validator) price(f string, p Price) {
	v.glob(f+".model", p.Model)
	v.decimal(f+".inputUSD", p.InputUSD)
	v.decimal(f+".outputUSD", p.OutputUSD)
	v.tokenPrices(f, p.TokenPrices, true)
	for _, t := range []struct {
		name string
		tp   *TokenPrices
	}{{TierBatch, p.Batch}, {TierPriority, p.Priority}} {
		if t.tp != nil {
			v.tokenPrices(f+"."+t.name, *t.tp, false)
		}
	}
	if p.WebSearchPer1000USD != "" {
		v.decimal(f+".webSearchPer1000USD", p.WebSearchPer1000USD)
	}
}

// tokenPrices checks the amounts of tp that are set (the standard tier's input and output are checked
// by price, set or not).
func (v *validator) tokenPrices(f string, tp TokenPrices, standard bool) {
	for _, a := range []struct{ name, s string }{{"inputUSD", tp.InputUSD}, {"outputUSD", tp.OutputUSD},
		{"cacheReadUSD", tp.CacheReadUSD}, {"cacheWrite5mUSD", tp.CacheWrite5mUSD}, {"cacheWrite1hUSD", tp.CacheWrite1hUSD}} {
		checkedByPrice := standard && (a.name == "inputUSD" || a.name == "outputUSD")
		if a.s != "" && !checkedByPrice {
			v.decimal(f+"."+a.name, a.s)
		}
	}
}

func (v *validator) decimal(field, s string) {
	if !decimalRE.MatchString(s) {
		v.add(field, "must be a decimal amount such as \"12.50\", got %q", s)
	}
}

func (v *validator) oneOf(field, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.add(field, "must be one of %s, got %q", strings.Join(allowed, ", "), got)
}

func (v *validator) credentials(c *Config) {
	cr := c.Credentials
	n := 0
	for _, set := range []bool{cr.Vault != nil, cr.Secret != nil, cr.WorkloadIdentityFederation != nil, cr.File != nil, cr.Env != nil} {
		if set {
			n++
		}
	}
	// A deny-all config needs no credential: it never forwards anything.
	denyAll := n == 0 && c.Deny != nil
	if n != 1 && !denyAll {
		v.add("credentials", "exactly one of vault, secret, workloadIdentityFederation, file or env must be set, got %d", n)
	}
	if s := cr.Vault; s != nil {
		v.oneOf("credentials.vault.authMethod", s.AuthMethod, VaultAuthCert, VaultAuthJWT, VaultAuthKubernetes)
		if s.Role == "" {
			v.add("credentials.vault.role", "must not be empty")
		}
		if s.AuthMethod == VaultAuthJWT && s.Audience == "" {
			v.add("credentials.vault.audience", "must be set for the jwt auth method")
		}
		if err := RelativePath(s.Path); err != nil {
			v.add("credentials.vault.path", "%v", err)
		}
		if s.Address != "" {
			v.url("credentials.vault.address", s.Address)
		}
	}
	if s := cr.Secret; s != nil && (s.Name == "" || s.Key == "") {
		v.add("credentials.secret", "name and key must both be set")
	}
	if s := cr.WorkloadIdentityFederation; s != nil {
		if s.Audience == "" {
			v.add("credentials.workloadIdentityFederation.audience", "must not be empty")
		}
		if s.FederationRuleID == "" || s.OrganizationID == "" {
			v.add("credentials.workloadIdentityFederation", "federationRuleID and organizationID must both be set")
		}
		if s.TokenURL != "" {
			v.url("credentials.workloadIdentityFederation.tokenURL", s.TokenURL)
		}
	}
	if s := cr.File; s != nil && s.Path == "" {
		v.add("credentials.file.path", "must not be empty")
	}
	if s := cr.Env; s != nil && s.Name == "" {
		v.add("credentials.env.name", "must not be empty")
	}
}

// RelativePath reports why p is not a clean relative secret path (no leading '/', no "." or ".."
// segments, no empty segments), or nil. The controller applies the same rule before confining a path
// to its tenant's prefix.
func RelativePath(p string) error {
	if p == "" {
		return errors.New("must not be empty")
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("must be relative (no leading '/'), got %q", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("must not contain empty, \".\" or \"..\" segments, got %q", p)
		}
	}
	return nil
}

func (v *validator) models(m *Models) {
	for i, p := range m.Allow {
		v.glob(fmt.Sprintf("models.allow[%d]", i), p)
	}
	for i, p := range m.Deny {
		v.glob(fmt.Sprintf("models.deny[%d]", i), p)
	}
	for name, target := range m.Aliases {
		v.glob(fmt.Sprintf("models.aliases[%s]", name), name)
		if strings.Contains(name, "*") || strings.Contains(target, "*") {
			v.add(fmt.Sprintf("models.aliases[%s]", name), "aliases and their targets must be model names, not globs")
		} else {
			v.glob(fmt.Sprintf("models.aliases[%s]", name), target)
		}
	}
	for i, r := range m.MaxTokens {
		f := fmt.Sprintf("models.maxTokens[%d]", i)
		v.glob(f+".model", r.Model)
		if r.Limit < 1 {
			v.add(f+".limit", "must be at least 1, got %d", r.Limit)
		}
		v.oneOf(f+".action", r.Action, ActionReject, ActionClamp)
		if r.Source != "" {
			v.oneOf(f+".source", r.Source, SourcePolicy, SourceTenant)
		}
	}
}

func (v *validator) endUser(e *EndUser) {
	v.oneOf("endUser.mode", e.Mode, EndUserStrict, EndUserOptional, EndUserDisabled)
	if e.Mode != EndUserDisabled && len(e.Issuers) == 0 {
		v.add("endUser.issuers", "at least one issuer is required when mode is %s", e.Mode)
	}
	for i, is := range e.Issuers {
		f := fmt.Sprintf("endUser.issuers[%d]", i)
		v.url(f+".url", is.URL)
		if len(is.Audiences) == 0 {
			v.add(f+".audiences", "at least one audience is required")
		}
		for j, alg := range is.Algorithms {
			if !slices.Contains(DefaultAlgorithms, alg) {
				v.add(fmt.Sprintf("%s.algorithms[%d]", f, j), "%q is not allowed: only asymmetric signing algorithms are accepted (%s)", alg, strings.Join(DefaultAlgorithms, ", "))
			}
		}
		if is.CACert != "" && !strings.Contains(is.CACert, "-----BEGIN CERTIFICATE-----") {
			v.add(f+".caCert", "must be a PEM bundle of CA certificates")
		}
	}
	if e.ClockSkew.Duration < 0 || e.ClockSkew.Duration > MaxClockSkew {
		v.add("endUser.clockSkew", "must be between 0 and %s, got %s", MaxClockSkew, e.ClockSkew.Duration)
	}
	if e.Replay != nil && e.Replay.Window.Duration < 0 {
		v.add("endUser.replay.window", "must not be negative, got %s", e.Replay.Window.Duration)
	}
	for i, r := range e.Rules {
		f := fmt.Sprintf("endUser.rules[%d]", i)
		if len(r.Scopes) == 0 && len(r.Groups) == 0 {
			v.add(f, "must name at least one scope or group")
		}
		for j, p := range r.Models {
			v.glob(fmt.Sprintf("%s.models[%d]", f, j), p)
		}
		if r.MaxTokens < 0 {
			v.add(f+".maxTokens", "must not be negative, got %d", r.MaxTokens)
		}
	}
}

func (v *validator) limits(l *Limits) {
	v.oneOf("limits.backend", l.Backend, BackendLocal, BackendRedis)
	v.oneOf("limits.failureMode", l.FailureMode, FailClosed, FailOpen)
	if l.Backend == BackendRedis {
		// The URL may hold a password: the messages never repeat it.
		if u, err := redisconn.Parse(l.RedisURL); l.RedisURL == "" {
			v.add("limits.redisURL", "is required with backend Redis (the operator renders it from --redis-url)")
		} else if err != nil {
			v.add("limits.redisURL", "%s", err.Error())
		} else if l.RedisUser != "" && u.HasCredentials() {
			// Two sources of credentials would leave it unclear which one the sidecar uses.
			v.add("limits.redisURL", "must not hold credentials when limits.redisUser is set (the password comes from a file)")
		}
	} else if l.RedisUser != "" {
		v.add("limits.redisUser", "is only used with backend Redis")
	}
	if b := l.RedisBroker; b != nil {
		if l.RedisUser == "" {
			v.add("limits.redisBroker", "is only used with limits.redisUser")
		}
		if u, err := url.Parse(b.URL); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			v.add("limits.redisBroker.url", "must be https://host:port, got %q", b.URL)
		}
		if id, err := spiffeid.FromString(b.ID); err != nil || id.Path() == "" {
			v.add("limits.redisBroker.id", "must be a SPIFFE ID with a path (spiffe://<trust domain>/...), got %q", b.ID)
		}
	}
	seen := map[string]bool{}
	for i, r := range l.Rules {
		f := fmt.Sprintf("limits.rules[%d]", i)
		if r.Name == "" {
			v.add(f+".name", "must not be empty")
		}
		if seen[r.Source+"/"+r.Name] {
			v.add(f+".name", "duplicate rule name %q", r.Name)
		}
		seen[r.Source+"/"+r.Name] = true
		v.oneOf(f+".key", r.Key, KeyWorkload, KeyEndUser, KeyNamespace, KeySession)
		if r.Key == KeySession && r.Source == SourceTenant {
			v.add(f+".key", "a tenant ceiling cannot be counted per Session (the client chooses its session ids)")
		}
		v.oneOf(f+".window", r.Window, WindowMinute, WindowHour, WindowDay)
		v.oneOf(f+".tokenType", r.TokenType, TokensInput, TokensOutput, TokensTotal)
		if r.Requests < 0 || r.Tokens < 0 || (r.Requests == 0 && r.Tokens == 0) {
			v.add(f, "requests and tokens must be positive and at least one must be set")
		}
	}
}

func (v *validator) budget(f string, b Budget) {
	if b.Name == "" {
		v.add(f+".name", "must not be empty")
	}
	v.oneOf(f+".key", b.Key, KeyWorkload, KeyEndUser, KeyNamespace, KeySession)
	if b.Key == KeySession && b.Source == SourceTenant {
		v.add(f+".key", "a tenant ceiling cannot be counted per Session (the client chooses its session ids)")
	}
	v.oneOf(f+".window", b.Window, WindowDay, WindowWeek, WindowMonth)
	v.oneOf(f+".tokenType", b.TokenType, TokensInput, TokensOutput, TokensTotal)
	v.oneOf(f+".enforcement", b.Enforcement, EnforcementSoft, EnforcementHard)
	switch {
	case b.Tokens > 0 && b.USD == "":
	case b.Tokens == 0 && b.USD != "":
		v.decimal(f+".usd", b.USD)
	default:
		v.add(f, "exactly one of tokens (positive) or usd must be set")
	}
}
