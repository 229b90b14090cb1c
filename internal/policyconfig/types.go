// Package policyconfig is the contract between the controller and the sidecar: the rendered, effective
// policy that the controller writes into one ConfigMap per ClaudeAccessPolicy and that every injected
// sidecar (or a standalone sidecar started with --config) loads and hot-reloads.
//
// It is a leaf package: the sidecar imports it, so it must never import controller-runtime, client-go or
// the API types. The schema is versioned by APIVersion; a sidecar refuses a document whose version or
// fields it does not know, because for a policy point silently ignoring an unknown restriction would make
// it weaker than its author intended. docs/sidecar-config.md documents every field.
package policyconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// APIVersion and Kind identify a rendered sidecar config document.
const (
	APIVersion = "sidecar.claudeguard.io/v1"
	Kind       = "SidecarConfig"
)

// Config is the whole policy one sidecar enforces.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	// Policy says where this config came from; it is copied into every audit record.
	Policy PolicyRef `json:"policy,omitempty"`
	// Deny, when set, makes the sidecar refuse every request with Deny.Reason. The controller renders it
	// when a policy cannot be admitted (no tenant, exceeds its tenant, conflicts), so pods fail closed.
	Deny *Deny `json:"deny,omitempty"`
	// Server holds standalone settings; in a cluster the webhook passes them as flags instead.
	Server Server `json:"server,omitempty"`
	// Identity is what the sidecar expects its own workload identity to be.
	Identity Identity `json:"identity,omitempty"`
	// Credentials says where the Anthropic API key comes from. Exactly one source is set.
	Credentials Credentials `json:"credentials"`
	// Endpoints is the allow-list of API paths. An entry is an exact path or a prefix ending in "/*".
	// Empty means DefaultEndpoints.
	Endpoints []string `json:"endpoints,omitempty"`
	// Models says which models may be called and with which max_tokens.
	Models Models `json:"models"`
	// MaxRequestBytes caps the request body size. Zero means DefaultMaxRequestBytes.
	MaxRequestBytes int64 `json:"maxRequestBytes,omitempty"`
	// DenyStreaming refuses requests with "stream": true.
	DenyStreaming bool `json:"denyStreaming,omitempty"`
	// ShadowMode evaluates every rule and records the decision but never blocks.
	ShadowMode bool `json:"shadowMode,omitempty"`
	// EndUser configures verification of end-user OIDC tokens; nil means Disabled.
	EndUser *EndUser `json:"endUser,omitempty"`
	// Revoked are the end-user tokens and users refused in the policy's namespace (ClaudeRevocation).
	// With the Redis limit backend the sidecar also reads them from Redis, which the operator updates
	// within a second; this copy covers the Local backend and a Redis that lost them.
	Revoked []Revocation `json:"revoked,omitempty"`
	// Limits are request and token rate limits. Every rule applies; a request must pass all of them.
	Limits Limits `json:"limits,omitempty"`
	// Budgets are token or USD allowances per calendar window.
	Budgets []Budget `json:"budgets,omitempty"`
	// Prices turn token usage into USD for USD budgets, per million tokens.
	Prices []Price `json:"prices,omitempty"`
	// Audit configures the per-request audit record.
	Audit Audit `json:"audit,omitempty"`
}

// PolicyRef names the ClaudeAccessPolicy (and the ClaudeTenant that narrowed it) a config was rendered from.
type PolicyRef struct {
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name,omitempty"`
	Generation int64  `json:"generation,omitempty"`
	Tenant     string `json:"tenant,omitempty"`
}

// FederationTokenPath is the upstream's OAuth token endpoint, under its base URL, where workload
// identity federation exchanges JWT-SVIDs by default.
const FederationTokenPath = "/v1/oauth/token"

// DefaultTokenURL is where workload identity federation exchanges when its tokenURL is empty: the
// upstream's own token endpoint (DefaultUpstream's when upstream is empty). The operator admits it and
// the sidecar uses it, so both must compute it alike.
func DefaultTokenURL(upstream string) string {
	if upstream == "" {
		upstream = DefaultUpstream
	}
	return strings.TrimSuffix(upstream, "/") + FederationTokenPath
}

// Rendered reports whether the operator rendered c from a ClaudeAccessPolicy: it always names the
// policy's generation (1 or more), which a hand-written standalone config has no reason to.
func (c *Config) Rendered() bool { return c.Policy.Generation > 0 }

// Deny makes the sidecar refuse everything.
type Deny struct {
	// Reason is returned to callers in the error message. It must not contain secrets.
	Reason string `json:"reason"`
}

// Server holds listener and upstream settings for standalone use.
type Server struct {
	// Listen is the proxy's address. Default DefaultListen (loopback).
	Listen string `json:"listen,omitempty"`
	// MetricsListen serves /metrics, /healthz and /readyz. Default DefaultMetricsListen.
	MetricsListen string `json:"metricsListen,omitempty"`
	// Upstream is the Anthropic API base URL. Default DefaultUpstream.
	Upstream string `json:"upstream,omitempty"`
	// MetricsTokenSHA256 is the hex SHA-256 of the bearer token that /metrics and /readyz's details
	// require (MetricsTokenHash). Empty leaves them open (standalone). The hash, unlike the token, may
	// be read by anyone: the operator renders it, and Prometheus holds the token.
	MetricsTokenSHA256 string `json:"metricsTokenSHA256,omitempty"`
}

// MetricsTokenHash is what Server.MetricsTokenSHA256 holds for token.
func MetricsTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Identity is the workload identity the sidecar expects.
type Identity struct {
	// TrustDomain is the SPIFFE trust domain; empty disables SPIFFE.
	TrustDomain string `json:"trustDomain,omitempty"`
	// Namespace is the pod's namespace; the SVID's path must name it.
	Namespace string `json:"namespace,omitempty"`
}

// Credentials is a one-of: exactly one field is set.
type Credentials struct {
	Vault                      *VaultSource  `json:"vault,omitempty"`
	Secret                     *SecretSource `json:"secret,omitempty"`
	WorkloadIdentityFederation *WIFSource    `json:"workloadIdentityFederation,omitempty"`
	File                       *FileSource   `json:"file,omitempty"`
	Env                        *EnvSource    `json:"env,omitempty"`
}

// Vault auth methods.
const (
	VaultAuthCert       = "cert"
	VaultAuthJWT        = "jwt"
	VaultAuthKubernetes = "kubernetes"
)

// VaultSource reads the key from a Vault (or OpenBao) KV v2 secret.
type VaultSource struct {
	// Address of the Vault server; rendered from the operator's configuration.
	Address string `json:"address,omitempty"`
	// CACert is the PEM bundle that verifies Vault's TLS certificate (public data); empty uses the
	// system roots. Rendered from the operator's configuration.
	CACert string `json:"caCert,omitempty"`
	// AuthMethod is cert, jwt or kubernetes.
	AuthMethod string `json:"authMethod"`
	// AuthMount is the auth method's mount path; default the method's name.
	AuthMount string `json:"authMount,omitempty"`
	// Role is the Vault role to log in as.
	Role string `json:"role"`
	// Audience is the JWT-SVID audience for the jwt method.
	Audience string `json:"audience,omitempty"`
	// Mount is the KV v2 mount.
	Mount string `json:"mount"`
	// Path is the secret path inside Mount, already confined to the tenant's prefix.
	Path string `json:"path"`
	// Field is the key inside the secret's data.
	Field string `json:"field"`
	// RefreshInterval is how often the key is re-read.
	RefreshInterval Duration `json:"refreshInterval,omitempty"`
	// MaxStaleness is how long the last key is served while Vault is unreachable.
	MaxStaleness Duration `json:"maxStaleness,omitempty"`
}

// SecretSource reads the key from a Kubernetes Secret the webhook mounts as a file.
type SecretSource struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// WIFSource exchanges a JWT-SVID for a short-lived Anthropic access token (workload identity
// federation: the OAuth 2.0 jwt-bearer grant), sent upstream as a bearer token.
type WIFSource struct {
	// Audience of the JWT-SVID presented to the token endpoint.
	Audience string `json:"audience"`
	// TokenURL is the OAuth token endpoint; default the upstream's /v1/oauth/token.
	TokenURL         string `json:"tokenURL,omitempty"`
	FederationRuleID string `json:"federationRuleID"`
	OrganizationID   string `json:"organizationID"`
	ServiceAccountID string `json:"serviceAccountID,omitempty"`
	WorkspaceID      string `json:"workspaceID,omitempty"`
}

// FileSource reads the key from a file (standalone mode; re-read after an upstream 401).
type FileSource struct {
	Path string `json:"path"`
}

// EnvSource reads the key from an environment variable (standalone mode).
type EnvSource struct {
	Name string `json:"name"`
}

// Actions for a max_tokens ceiling.
const (
	ActionReject = "Reject"
	ActionClamp  = "Clamp"
)

// Models restricts the models a workload may call.
type Models struct {
	// Allow lists model globs; a model must match one. Empty allows nothing.
	Allow []string `json:"allow"`
	// Deny lists model globs that are refused even when allowed.
	Deny []string `json:"deny,omitempty"`
	// Aliases maps a name callers use to the model it is rewritten to before any other check.
	Aliases map[string]string `json:"aliases,omitempty"`
	// MaxTokens are max_tokens ceilings; the first rule whose Model glob matches applies.
	MaxTokens []MaxTokensRule `json:"maxTokens,omitempty"`
}

// MaxTokensRule caps max_tokens for the models it matches.
type MaxTokensRule struct {
	Model  string `json:"model"`
	Limit  int64  `json:"limit"`
	Action string `json:"action"`
	// Source says whether the ceiling is the policy's or its tenant's (refusals name it).
	Source string `json:"source,omitempty"`
}

// End-user modes.
const (
	EndUserStrict   = "Strict"
	EndUserOptional = "Optional"
	EndUserDisabled = "Disabled"
)

// EndUser configures OIDC verification of the person a workload acts for.
type EndUser struct {
	// Mode is Strict (a valid token is required), Optional (verified when present) or Disabled.
	Mode string `json:"mode"`
	// Header carries the token; default "Authorization" with the Bearer scheme.
	Header  string   `json:"header,omitempty"`
	Issuers []Issuer `json:"issuers,omitempty"`
	// ClockSkew is the tolerance for exp and nbf; default DefaultClockSkew.
	ClockSkew Duration `json:"clockSkew,omitempty"`
	// SubjectClaim names the claim that identifies the user in audit records and limit keys; default "sub".
	SubjectClaim string `json:"subjectClaim,omitempty"`
	// GroupsClaim names the claim that lists the user's groups; default "groups".
	GroupsClaim string      `json:"groupsClaim,omitempty"`
	Rules       []ScopeRule `json:"rules,omitempty"`
	Replay      *Replay     `json:"replay,omitempty"`
	// Tokenless is what a request without a token gets in Optional mode when there are Rules:
	// TokenlessLowestTier (default) or TokenlessPolicy.
	Tokenless string `json:"tokenless,omitempty"`
}

// What a tokenless request gets in Optional mode.
const (
	// TokenlessLowestTier: only what every scope rule grants, under the smallest of their ceilings.
	TokenlessLowestTier = "LowestTier"
	// TokenlessPolicy: the workload policy alone, as if there were no scope rules.
	TokenlessPolicy = "Policy"
)

// Issuer is one trusted OIDC issuer.
type Issuer struct {
	// URL is the issuer; discovery is read from URL + "/.well-known/openid-configuration".
	URL string `json:"url"`
	// Audiences accepted in the token's aud claim (any one of them).
	Audiences []string `json:"audiences"`
	// Algorithms allowed to sign tokens; empty means DefaultAlgorithms. Only asymmetric ones.
	Algorithms []string `json:"algorithms,omitempty"`
	// CACert is a PEM bundle trusted, besides the system roots, for the issuer's TLS certificate.
	CACert string `json:"caCert,omitempty"`
}

// DefaultAlgorithms are the signing algorithms accepted when an issuer lists none: every asymmetric
// JWS algorithm. "none" and the HMAC family are never accepted: a verifier holding only the issuer's
// public key must not be tricked into treating that key as a shared secret.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// ScopeRule grants models and a max_tokens ceiling to tokens carrying any of Scopes or Groups.
type ScopeRule struct {
	Scopes    []string `json:"scopes,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	Models    []string `json:"models"`
	MaxTokens int64    `json:"maxTokens,omitempty"`
}

// Replay enables jti replay protection.
type Replay struct {
	// Window bounds how long a jti is remembered; zero means until the token expires.
	Window Duration `json:"window,omitempty"`
}

// Limit backends and failure modes.
const (
	BackendLocal = "Local"
	BackendRedis = "Redis"

	FailClosed = "FailClosed"
	FailOpen   = "FailOpen"
)

// Limits holds rate-limit rules and where their counters live.
type Limits struct {
	Backend     string `json:"backend,omitempty"`
	FailureMode string `json:"failureMode,omitempty"`
	RedisURL    string `json:"redisURL,omitempty"`
	// RedisUser, when set, is the Redis ACL user the sidecar authenticates as, with the password read
	// from a file (the operator's per-namespace users); RedisURL then carries no credentials.
	RedisUser string `json:"redisUser,omitempty"`
	// RedisBroker, when set with RedisUser, is where the sidecar gets RedisUser's password: the
	// operator's Redis credential broker, which hands it over only to a client presenting an X.509-SVID
	// of the namespace. No Secret holds it then, so the namespace's admins cannot read it
	// (docs/limits.md, "Security").
	RedisBroker *RedisBroker `json:"redisBroker,omitempty"`
	Rules       []LimitRule  `json:"rules,omitempty"`
}

// RedisBroker is the operator's Redis credential broker as a sidecar reaches it.
type RedisBroker struct {
	// URL is https://host:port of the broker (the path is fixed: redisbroker.Path).
	URL string `json:"url"`
	// ID is the broker's SPIFFE ID, which the sidecar requires of the server it talks to.
	ID string `json:"id"`
}

// Limit keys, windows and token types.
const (
	KeyWorkload  = "Workload"
	KeyEndUser   = "EndUser"
	KeyNamespace = "Namespace"
	// KeySession counts per client session of a workload: "<workload>/<session id>", and
	// "<workload>/-" for requests without one.
	KeySession = "Session"

	WindowMinute = "Minute"
	WindowHour   = "Hour"
	WindowDay    = "Day"
	WindowWeek   = "Week"
	WindowMonth  = "Month"

	TokensInput  = "Input"
	TokensOutput = "Output"
	TokensTotal  = "Total"

	SourcePolicy = "policy"
	SourceTenant = "tenant"
)

// LimitRule is one rate limit: at most Requests requests and Tokens tokens per Window per Key.
type LimitRule struct {
	Name string `json:"name"`
	// Source says whether the rule came from the policy or its tenant (denials name it).
	Source    string `json:"source,omitempty"`
	Key       string `json:"key"`
	Window    string `json:"window"`
	Requests  int64  `json:"requests,omitempty"`
	Tokens    int64  `json:"tokens,omitempty"`
	TokenType string `json:"tokenType,omitempty"`
}

// Budget is a token or USD allowance per calendar window (soft cap: see docs/sidecar-config.md).
type Budget struct {
	Name      string `json:"name"`
	Source    string `json:"source,omitempty"`
	Key       string `json:"key"`
	Window    string `json:"window"`
	Tokens    int64  `json:"tokens,omitempty"`
	USD       string `json:"usd,omitempty"`
	TokenType string `json:"tokenType,omitempty"`
	// Enforcement is EnforcementSoft (default) or EnforcementHard.
	Enforcement string `json:"enforcement,omitempty"`
}

// Budget enforcements: Soft budgets are checked against settled spend; Hard ones reserve each
// request's maximum cost.
const (
	EnforcementSoft = "Soft"
	EnforcementHard = "Hard"
)

// Price is what the models Model matches cost, in decimal USD: tokens per million, web searches per
// thousand. The operator renders the cluster's price table (ClaudePriceTable, over the built-in one)
// into every config with a USD budget; the first entry whose glob matches a model prices it.
type Price struct {
	Model string `json:"model"`
	// TokenPrices is the standard tier's; InputUSD and OutputUSD are required.
	TokenPrices `json:",inline"`
	// Batch and Priority price responses whose usage.service_tier names that tier. Their input and
	// output default to the standard tier's, their cache prices to the multipliers of their own input
	// (TokenPrices). Nil: the standard prices apply.
	Batch    *TokenPrices `json:"batch,omitempty"`
	Priority *TokenPrices `json:"priority,omitempty"`
	// WebSearchPer1000USD is the fee per thousand server-side web searches
	// (usage.server_tool_use.web_search_requests); empty costs nothing.
	WebSearchPer1000USD string `json:"webSearchPer1000USD,omitempty"`
}

// TokenPrices are USD per million tokens of each kind. A cache price left empty is derived from
// InputUSD with the API's multipliers (reads 0.1×, 5-minute writes 1.25×, 1-hour writes 2×), so an
// entry that names only input and output never prices cache tokens at 0.
type TokenPrices struct {
	InputUSD        string `json:"inputUSD,omitempty"`
	OutputUSD       string `json:"outputUSD,omitempty"`
	CacheReadUSD    string `json:"cacheReadUSD,omitempty"`
	CacheWrite5mUSD string `json:"cacheWrite5mUSD,omitempty"`
	CacheWrite1hUSD string `json:"cacheWrite1hUSD,omitempty"`
}

// Service tiers a response's usage.service_tier may name.
const (
	TierStandard = "standard"
	TierBatch    = "batch"
	TierPriority = "priority"
)

// Audit configures audit records. Prompts and credentials are never recorded.
type Audit struct {
	// Disabled turns audit records off (they are on by default).
	Disabled bool `json:"disabled,omitempty"`
	// OmitEndUser leaves the end user's subject out of audit records (recorded by default).
	OmitEndUser bool `json:"omitEndUser,omitempty"`
	// EndUserMetricLabel adds the subject as a metric label (mind the cardinality).
	EndUserMetricLabel bool `json:"endUserMetricLabel,omitempty"`
}
