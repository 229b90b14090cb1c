package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClaudeAccessPolicySpec is what a tenant allows the selected pods to do with the Claude API.
type ClaudeAccessPolicySpec struct {
	// podSelector selects the pods in this namespace the policy applies to. An empty selector selects
	// every pod in the namespace. A policy never selects pods in another namespace.
	// +required
	PodSelector metav1.LabelSelector `json:"podSelector"`

	// credentials says where the sidecar gets the Anthropic API key. Exactly one source must be set.
	// +required
	Credentials CredentialSource `json:"credentials"`

	// models says which models may be called and with which max_tokens.
	// +required
	Models ModelPolicy `json:"models"`

	// endUser configures verification of end-user OAuth2/OIDC tokens.
	// +optional
	EndUser *EndUserPolicy `json:"endUser,omitempty"`

	// limits are request and token rate limits. A request must pass every rule.
	// +optional
	Limits *LimitPolicy `json:"limits,omitempty"`

	// budgets are token or USD allowances per calendar window.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Budgets []Budget `json:"budgets,omitempty"`

	// endpoints is the allow-list of Claude API endpoints. Every other path is refused. Default (field
	// omitted): Messages, CountTokens and Models. An empty list is refused rather than read as the default.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Endpoints []Endpoint `json:"endpoints,omitempty"`

	// maxRequestBytes caps the size of a request body. Default 33554432 (32 MiB, the Messages API's own
	// limit).
	// +optional
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=33554432
	MaxRequestBytes *int64 `json:"maxRequestBytes,omitempty"`

	// allowStreaming permits "stream": true requests. Default true.
	// +optional
	// +kubebuilder:default=true
	AllowStreaming *bool `json:"allowStreaming,omitempty"`

	// audit configures the audit record the sidecar writes for every request. Prompts, keys and tokens
	// are never recorded.
	// +optional
	Audit *AuditPolicy `json:"audit,omitempty"`

	// shadowMode evaluates every rule and records the decision but never blocks a request. The tenant
	// must allow it (ClaudeTenant spec.allowShadowMode), because it lifts the tenant's ceilings too.
	// +optional
	ShadowMode bool `json:"shadowMode,omitempty"`
}

// Endpoint names a Claude API endpoint.
// +kubebuilder:validation:Enum=Messages;CountTokens;Models
type Endpoint string

// Endpoints.
const (
	// EndpointMessages is POST /v1/messages.
	EndpointMessages Endpoint = "Messages"
	// EndpointCountTokens is POST /v1/messages/count_tokens.
	EndpointCountTokens Endpoint = "CountTokens"
	// EndpointModels is GET /v1/models and GET /v1/models/{id}.
	EndpointModels Endpoint = "Models"
)

// CredentialSource is a union: exactly one member is set.
// +kubebuilder:validation:ExactlyOneOf=vault;secretRef;workloadIdentityFederation
type CredentialSource struct {
	// vault reads the key from a Vault KV v2 secret after logging in with the workload's identity.
	// +optional
	Vault *VaultCredentials `json:"vault,omitempty"`

	// secretRef reads the key from a Secret in this namespace, mounted into the sidecar only.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`

	// workloadIdentityFederation exchanges the workload's JWT-SVID for a short-lived Anthropic token.
	// +optional
	WorkloadIdentityFederation *WorkloadIdentityFederation `json:"workloadIdentityFederation,omitempty"`
}

// VaultAuthMethod is how the sidecar logs in to Vault.
// +kubebuilder:validation:Enum=cert;jwt;kubernetes
type VaultAuthMethod string

// Vault auth methods.
const (
	VaultAuthCert       VaultAuthMethod = "cert"
	VaultAuthJWT        VaultAuthMethod = "jwt"
	VaultAuthKubernetes VaultAuthMethod = "kubernetes"
)

// VaultCredentials locates the key in Vault.
// +kubebuilder:validation:XValidation:rule="self.authMethod != 'jwt' || has(self.audience)",message="audience is required when authMethod is jwt",fieldPath=".audience",reason=FieldValueRequired
type VaultCredentials struct {
	// authMethod is cert (TLS client auth with the X.509-SVID), jwt (a JWT-SVID) or kubernetes (the
	// pod's service-account token, for clusters without SPIFFE).
	// +required
	AuthMethod VaultAuthMethod `json:"authMethod"`

	// role is the Vault role to log in as. It must be one of the roles the tenant allows.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.-]+$`
	Role string `json:"role"`

	// audience is the JWT-SVID audience for the jwt method.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Audience string `json:"audience,omitempty"`

	// mount is the KV v2 secrets engine mount. Default "secret".
	// +optional
	// +kubebuilder:default=secret
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.-]+$`
	Mount string `json:"mount,omitempty"`

	// path is the secret's path inside the mount, relative to the tenant's Vault prefix. It must be
	// relative and must not contain "." or ".." segments.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$') && !self.matches('(^|/)[.][.]?(/|$)')",message="must be a relative path of letters, digits, '_', '.' and '-' segments, with no leading '/', empty, '.' or '..' segments"
	Path string `json:"path"`

	// field is the key inside the secret's data that holds the API key. Default "api_key".
	// +optional
	// +kubebuilder:default=api_key
	// +kubebuilder:validation:MaxLength=128
	Field string `json:"field,omitempty"`

	// refreshInterval is how often the key is re-read. Between 30s and 24h; default 5m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('30s') && duration(self) <= duration('24h')",message="must be between 30s and 24h"
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`
}

// SecretKeyRef selects a key of a Secret in the policy's own namespace. There is deliberately no
// namespace field: a policy can only use its own namespace's Secrets.
type SecretKeyRef struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a Secret name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name"`

	// key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// WorkloadIdentityFederation exchanges the workload's JWT-SVID for a short-lived Anthropic access token
// (OAuth 2.0 jwt-bearer grant at the token endpoint), refreshed before it expires. The federation rule,
// organization and service account are configured in the Claude Console.
type WorkloadIdentityFederation struct {
	// audience of the JWT-SVID presented to the token endpoint, as the federation rule expects.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Audience string `json:"audience"`

	// federationRuleID is the federation rule that admits the workload's JWT-SVID.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	FederationRuleID string `json:"federationRuleID"`

	// organizationID is the Anthropic organization the token is issued in.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	OrganizationID string `json:"organizationID"`

	// serviceAccountID selects the service account when the rule allows several.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	ServiceAccountID string `json:"serviceAccountID,omitempty"`

	// workspaceID scopes the token to a workspace.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	WorkspaceID string `json:"workspaceID,omitempty"`

	// tokenURL is the OAuth 2.0 token endpoint. Default: the upstream's /v1/oauth/token.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="must be an https URL"
	TokenURL string `json:"tokenURL,omitempty"`
}

// MaxTokensAction is what happens to a request whose max_tokens exceeds its ceiling.
// +kubebuilder:validation:Enum=Reject;Clamp
type MaxTokensAction string

// Max-tokens actions.
const (
	// ActionReject refuses the request with 400.
	ActionReject MaxTokensAction = "Reject"
	// ActionClamp lowers max_tokens to the ceiling and forwards the request.
	ActionClamp MaxTokensAction = "Clamp"
)

// ModelPolicy restricts models and max_tokens.
type ModelPolicy struct {
	// allow lists the models (names or globs) that may be called. At least one.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Allow []ModelPattern `json:"allow"`

	// deny lists models refused even when allow matches them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	Deny []ModelPattern `json:"deny,omitempty"`

	// aliases rewrite a model name callers use into a real model before any other check.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Aliases []ModelAlias `json:"aliases,omitempty"`

	// maxTokens are max_tokens ceilings per model; the first entry whose model matches applies.
	// +optional
	// +listType=map
	// +listMapKey=model
	// +kubebuilder:validation:MaxItems=32
	MaxTokens []ModelMaxTokens `json:"maxTokens,omitempty"`
}

// ModelAlias maps an alias to a model.
type ModelAlias struct {
	// name callers send in "model".
	// +required
	Name ModelName `json:"name"`
	// target is the model the request is sent to.
	// +required
	Target ModelName `json:"target"`
}

// ModelMaxTokens is a max_tokens ceiling for the models a pattern matches.
type ModelMaxTokens struct {
	// model is a model name or glob.
	// +required
	Model ModelPattern `json:"model"`

	// limit is the largest max_tokens allowed.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Limit int64 `json:"limit"`

	// action is Reject (refuse with 400) or Clamp (lower max_tokens to limit). Default Reject.
	// +optional
	// +kubebuilder:default=Reject
	Action MaxTokensAction `json:"action,omitempty"`
}

// EndUserMode says whether end-user tokens are required.
// +kubebuilder:validation:Enum=Strict;Optional;Disabled
type EndUserMode string

// End-user modes.
const (
	EndUserStrict   EndUserMode = "Strict"
	EndUserOptional EndUserMode = "Optional"
	EndUserDisabled EndUserMode = "Disabled"
)

// TokenlessMode is what a request without an end-user token gets in Optional mode.
type TokenlessMode string

// Tokenless modes.
const (
	TokenlessLowestTier TokenlessMode = "LowestTier"
	TokenlessPolicy     TokenlessMode = "Policy"
)

// EndUserPolicy configures OIDC verification of the person a workload acts for.
// +kubebuilder:validation:XValidation:rule="self.mode == 'Disabled' || (has(self.issuers) && size(self.issuers) > 0)",message="at least one issuer is required unless mode is Disabled",fieldPath=".issuers",reason=FieldValueRequired
type EndUserPolicy struct {
	// mode is Strict (a valid token is required), Optional (verified when present) or Disabled.
	// +required
	Mode EndUserMode `json:"mode"`

	// issuers are the trusted OIDC issuers.
	// +optional
	// +listType=map
	// +listMapKey=url
	// +kubebuilder:validation:MaxItems=8
	Issuers []OIDCIssuer `json:"issuers,omitempty"`

	// header carries the token. Default "Authorization" with the Bearer scheme, which is what
	// Anthropic SDKs send when given an auth token.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	Header string `json:"header,omitempty"`

	// groupsClaim names the claim that lists the user's groups. Default "groups".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	GroupsClaim string `json:"groupsClaim,omitempty"`

	// subjectClaim names the claim that identifies the user in audit records and EndUser limit keys.
	// Default "sub".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	SubjectClaim string `json:"subjectClaim,omitempty"`

	// clockSkew is the tolerance applied to exp and nbf. Default 30s, at most 5m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('5m')",message="must be between 0s and 5m"
	ClockSkew *metav1.Duration `json:"clockSkew,omitempty"`

	// rules map scopes and groups to models and max_tokens ceilings. The most permissive matching rule
	// applies, always within models and the tenant's ceilings.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Rules []ScopeRule `json:"rules,omitempty"`

	// tokenless is what a request without an end-user token gets in Optional mode when there are rules:
	// LowestTier (default) grants only what every rule grants, under the smallest of their ceilings, so
	// leaving the token out never gets more than the least-privileged token; Policy grants the workload
	// policy alone, as if there were no rules.
	// +optional
	// +kubebuilder:validation:Enum=LowestTier;Policy
	Tokenless TokenlessMode `json:"tokenless,omitempty"`

	// replayProtection accepts each token's jti only once until the token expires (or once per
	// replayWindow). Tokens without a jti are refused. The seen jti values live in the limit backend,
	// so with backend Redis a token replayed to another replica is refused too.
	// +optional
	ReplayProtection bool `json:"replayProtection,omitempty"`

	// replayWindow accepts a jti once per window, when set, instead of once per token lifetime.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be at least 1s"
	ReplayWindow *metav1.Duration `json:"replayWindow,omitempty"`
}

// OIDCIssuer is one trusted issuer.
type OIDCIssuer struct {
	// url is the issuer URL; discovery is fetched from url + "/.well-known/openid-configuration".
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="must be an https URL"
	URL string `json:"url"`

	// audiences accepted in the token's aud claim. At least one.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:MinLength=1
	Audiences []string `json:"audiences"`

	// algorithms allowed to sign tokens. Default every asymmetric JWS algorithm; "none" and HMAC are
	// never accepted.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:Enum=RS256;RS384;RS512;PS256;PS384;PS512;ES256;ES384;ES512;EdDSA
	Algorithms []string `json:"algorithms,omitempty"`

	// caBundle is a PEM bundle trusted, besides the system roots, for the issuer's TLS certificate
	// (an internal identity provider). Public data.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	// +kubebuilder:validation:XValidation:rule="self.contains('-----BEGIN CERTIFICATE-----')",message="must be a PEM bundle of CA certificates"
	CABundle string `json:"caBundle,omitempty"`
}

// ScopeRule grants models and a max_tokens ceiling to tokens carrying any of its scopes or groups.
// +kubebuilder:validation:XValidation:rule="(has(self.scopes) && size(self.scopes) > 0) || (has(self.groups) && size(self.groups) > 0)",message="at least one of scopes or groups must be set"
type ScopeRule struct {
	// scopes grant the rule: any one of them in the token (from the scope or scp claim).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:MinLength=1
	Scopes []string `json:"scopes,omitempty"`

	// groups grant the rule: any one of them in the token (from groupsClaim).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:MinLength=1
	Groups []string `json:"groups,omitempty"`

	// models the rule grants.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Models []ModelPattern `json:"models"`

	// maxTokens is the ceiling for max_tokens under this rule; unset means the policy's ceiling.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxTokens *int64 `json:"maxTokens,omitempty"`
}

// LimitBackend is where limit counters live.
// +kubebuilder:validation:Enum=Local;Redis
type LimitBackend string

// Limit backends.
const (
	LimitBackendLocal LimitBackend = "Local"
	LimitBackendRedis LimitBackend = "Redis"
)

// FailureMode is what happens when the shared limit backend is unreachable.
// +kubebuilder:validation:Enum=FailClosed;FailOpen
type FailureMode string

// Failure modes.
const (
	FailClosed FailureMode = "FailClosed"
	FailOpen   FailureMode = "FailOpen"
)

// LimitPolicy holds rate limits and their backend.
type LimitPolicy struct {
	// backend is Local (counters in each sidecar) or Redis (shared by every replica, configured by the
	// operator). Default Local.
	// +optional
	// +kubebuilder:default=Local
	Backend LimitBackend `json:"backend,omitempty"`

	// failureMode is FailClosed (deny while the backend is unreachable) or FailOpen (allow, log and count
	// locally). Default FailClosed.
	// +optional
	// +kubebuilder:default=FailClosed
	FailureMode FailureMode `json:"failureMode,omitempty"`

	// rules are the limits; every rule applies.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Rules []RateLimit `json:"rules,omitempty"`
}

// AuditPolicy configures audit records.
type AuditPolicy struct {
	// endUserSubject records the verified end user's subject (endUser.subjectClaim) in each audit record.
	// Default true; set false where user identifiers must not reach the audit log.
	// +optional
	// +kubebuilder:default=true
	EndUserSubject *bool `json:"endUserSubject,omitempty"`

	// endUserMetricLabel adds the end user's subject as a metric label. Off by default: every distinct
	// user becomes a time series.
	// +optional
	EndUserMetricLabel bool `json:"endUserMetricLabel,omitempty"`
}

// ClaudeAccessPolicyStatus is the observed state of a ClaudeAccessPolicy.
type ClaudeAccessPolicyStatus struct {
	// conditions are the policy's observations: Ready says whether it is in force and, if not, exactly why.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// tenant is the ClaudeTenant that narrowed this policy, if any.
	// +optional
	Tenant string `json:"tenant,omitempty"`

	// models summarises the allowed models for display.
	// +optional
	Models string `json:"models,omitempty"`

	// renderedConfig names the ConfigMap holding the rendered sidecar config and its content hash.
	// +optional
	RenderedConfig *RenderedConfigRef `json:"renderedConfig,omitempty"`

	// pods counts the pods this policy selects.
	// +optional
	Pods *PodCounts `json:"pods,omitempty"`

	// effective is what the selected pods' sidecars enforce while the policy is admitted: the policy
	// narrowed by its tenant, with the tenant's own ceilings and limits, for tenant admins, who cannot
	// read the ClaudeTenant. Not set while the policy is not admitted (every call is then refused).
	// +optional
	Effective *EffectivePolicy `json:"effective,omitempty"`

	// spend is what the policy's budgets counted per Namespace (its own and its tenant's) have spent in
	// their current windows, tightest first, read from the shared Redis (Redis-backed policies only);
	// refreshed about every 30 seconds while the policy is admitted. Budgets counted per Workload,
	// EndUser or Session are not listed: they have one counter per caller.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Spend []BudgetSpend `json:"spend,omitempty"`
}

// BudgetSpend is one budget's spend in its current window.
type BudgetSpend struct {
	// budget is the budget's name in its source.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Budget string `json:"budget"`
	// source is policy or tenant: who set the budget.
	// +required
	// +kubebuilder:validation:MaxLength=16
	Source string `json:"source"`
	// namespace whose spend this is.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// window is the budget's calendar window (Day, Week, Month).
	// +required
	// +kubebuilder:validation:MaxLength=16
	Window string `json:"window"`
	// spent in the window: US dollars as "$12.34" (to the micro-dollar when smaller), or tokens.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Spent string `json:"spent"`
	// remaining is the budget minus spent, never below zero, in the same unit.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Remaining string `json:"remaining"`
	// limit is the budget, in the same unit.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Limit string `json:"limit"`
	// resetsAt is when the window ends and the budget starts again.
	// +required
	ResetsAt metav1.Time `json:"resetsAt"`
	// observedAt is when the spend was read.
	// +required
	ObservedAt metav1.Time `json:"observedAt"`
}

// EffectivePolicy is the part of a rendered config a tenant admin needs to predict a call's outcome.
type EffectivePolicy struct {
	// models are the model patterns the sidecars allow.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	Models []string `json:"models,omitempty"`
	// deniedModels are refused even when allowed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	DeniedModels []string `json:"deniedModels,omitempty"`
	// maxTokens are the max_tokens ceilings in the order they apply (the first whose model matches);
	// the tenant's ceiling is the last.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	MaxTokens []EffectiveCeiling `json:"maxTokens,omitempty"`
	// maxRequestBytes is the largest request body accepted.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxRequestBytes int64 `json:"maxRequestBytes,omitempty"`
	// limitsBackend is where limits and budgets count: Local (each pod on its own) or Redis (shared).
	// +optional
	// +kubebuilder:validation:MaxLength=16
	LimitsBackend string `json:"limitsBackend,omitempty"`
	// limits are the rate limits, the policy's and the tenant's; a call must pass all of them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Limits []EffectiveLimit `json:"limits,omitempty"`
	// budgets are the token and USD allowances, the policy's and the tenant's.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Budgets []EffectiveLimit `json:"budgets,omitempty"`
}

// EffectiveCeiling is one max_tokens ceiling.
type EffectiveCeiling struct {
	// model is the glob the ceiling applies to.
	// +required
	// +kubebuilder:validation:MaxLength=128
	Model string `json:"model"`
	// limit is the largest max_tokens allowed.
	// +required
	Limit int64 `json:"limit"`
	// action is Reject or Clamp.
	// +required
	// +kubebuilder:validation:MaxLength=16
	Action string `json:"action"`
	// source is policy or tenant: whose ceiling it is.
	// +required
	// +kubebuilder:validation:MaxLength=16
	Source string `json:"source"`
}

// EffectiveLimit is one rate limit or budget.
type EffectiveLimit struct {
	// name of the rule in its source.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// source is policy or tenant: who set the rule.
	// +required
	// +kubebuilder:validation:MaxLength=16
	Source string `json:"source"`
	// key is who the rule counts per: Workload, EndUser, Namespace or Session.
	// +required
	// +kubebuilder:validation:MaxLength=16
	Key string `json:"key"`
	// window is the calendar window (Minute, Hour, Day, Week, Month).
	// +required
	// +kubebuilder:validation:MaxLength=16
	Window string `json:"window"`
	// requests per window, when the rule counts requests.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Requests int64 `json:"requests,omitempty"`
	// tokens per window, when the rule counts tokens.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Tokens int64 `json:"tokens,omitempty"`
	// usd per window, for a USD budget.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	USD string `json:"usd,omitempty"`
	// enforcement of a budget: Soft or Hard.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Enforcement string `json:"enforcement,omitempty"`
}

// RenderedConfigRef points at a rendered config.
type RenderedConfigRef struct {
	// name of the ConfigMap.
	// +required
	Name string `json:"name"`
	// hash of its content.
	// +required
	Hash string `json:"hash"`
	// replacedForeign says that a ConfigMap of this name existed that claude-guard had not written for
	// this policy (created before the policy, unlabelled, immutable, or recreated after a deletion), and
	// that the controller replaced it. No pod mounted it: the webhook mounts only the config this status
	// vouches for.
	// +optional
	ReplacedForeign *ForeignConfig `json:"replacedForeign,omitempty"`
}

// ForeignConfig is a ConfigMap the controller found under a rendered config's name and replaced.
type ForeignConfig struct {
	// time the controller replaced it.
	// +required
	Time metav1.Time `json:"time"`
	// reason it was not the controller's.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
}

// PodCounts counts pods a policy selects.
type PodCounts struct {
	// selected pods that the policy's podSelector matches.
	// +required
	Selected int32 `json:"selected"`
	// injected pods that carry this policy's sidecar.
	// +required
	Injected int32 `json:"injected"`
	// notInjected pods that are selected but run without the sidecar (created before the policy, opted
	// out, or skipped by the webhook).
	// +required
	NotInjected int32 `json:"notInjected"`
	// conflicting pods that another policy in the namespace also selects.
	// +optional
	Conflicting int32 `json:"conflicting,omitempty"`
	// notInjectedReasons groups the selected pods running without this policy's sidecar by why.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	NotInjectedReasons []NotInjectedReason `json:"notInjectedReasons,omitempty"`
	// staleConfig counts running pods whose sidecar still enforces an older rendered config than
	// status.renderedConfig: the kubelet refreshes a mounted ConfigMap on its sync period (about a
	// minute), and until then such a sidecar applies the previous policy.
	// +optional
	StaleConfig int32 `json:"staleConfig,omitempty"`
	// staleConfigExample is one pod counted in staleConfig.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StaleConfigExample string `json:"staleConfigExample,omitempty"`
	// sidecarsChecked is how many running sidecars reported which config they enforce (the operator
	// asks each on its metrics port; a NetworkPolicy can keep it out, and those are not counted).
	// +optional
	SidecarsChecked int32 `json:"sidecarsChecked,omitempty"`
}

// NotInjectedReason is one reason selected pods run without the policy's sidecar.
type NotInjectedReason struct {
	// reason the pods were not injected.
	// +required
	Reason string `json:"reason"`
	// pods with this reason.
	// +required
	Pods int32 `json:"pods"`
	// example is one such pod.
	// +required
	Example string `json:"example"`
}

// ClaudeAccessPolicy lets the pods it selects call the Claude API through an injected policy sidecar.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cap,categories=claude-guard
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].status`,priority=1
// +kubebuilder:printcolumn:name="Models",type=string,JSONPath=`.status.models`
// +kubebuilder:printcolumn:name="Spent",type=string,JSONPath=`.status.spend[0].spent`
// +kubebuilder:printcolumn:name="Remaining",type=string,JSONPath=`.status.spend[0].remaining`
// +kubebuilder:printcolumn:name="Budget",type=string,JSONPath=`.status.spend[0].budget`,priority=1
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.pods.selected`
// +kubebuilder:printcolumn:name="Injected",type=integer,JSONPath=`.status.pods.injected`,priority=1
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.status.tenant`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters (it names the rendered ConfigMap)"
type ClaudeAccessPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the tenant allows.
	// +required
	Spec ClaudeAccessPolicySpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status ClaudeAccessPolicyStatus `json:"status,omitempty"`
}

// ClaudeAccessPolicyList is a list of ClaudeAccessPolicy.
//
// +kubebuilder:object:root=true
type ClaudeAccessPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClaudeAccessPolicy `json:"items"`
}
