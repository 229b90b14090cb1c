//go:build integration

package apivalidation

var policyCases = []validationCase{
	{name: "minimal policy is valid", yaml: validPolicy},
	{name: "policy limit and budget per session are valid", yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models: {allow: [claude-haiku-*]}
  limits: {rules: [{name: per-session, key: Session, window: Hour, tokens: 200000}]}
  budgets: [{name: per-session-day, key: Session, window: Day, tokens: 1000000}]
`)},
	{name: "unknown limit key", want: `spec.limits.rules[0].key: Unsupported value: "Pod": supported values: "Workload", "EndUser", "Namespace", "Session"`, yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models: {allow: [claude-haiku-*]}
  limits: {rules: [{name: per-pod, key: Pod, window: Hour, tokens: 200000}]}
`)},
	{name: "no credential source", want: "spec.credentials: Invalid value: exactly one of the fields in [vault secretRef workloadIdentityFederation] must be set", yaml: policyWith(`
  podSelector: {}
  credentials: {}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "two credential sources", want: "spec.credentials: Invalid value: exactly one of the fields in [vault secretRef workloadIdentityFederation] must be set", yaml: policyWith(`
  podSelector: {}
  credentials:
    vault: {authMethod: cert, role: team-a, path: anthropic}
    secretRef: {name: key, key: api_key}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "model glob with uppercase", want: "spec.models.allow[1]: Invalid value: \"Claude-Opus\": must be a model name or glob made of lowercase letters, digits, '.', '-', '_' and single '*' (e.g. claude-haiku-*)", yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models: {allow: [claude-haiku-*, Claude-Opus]}
`)},
	{name: "model glob with double star", want: "spec.models.allow[0]: Invalid value: \"claude-**\": must be a model name or glob made of lowercase letters, digits, '.', '-', '_' and single '*' (e.g. claude-haiku-*)", yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models: {allow: ["claude-**"]}
`)},
	{name: "empty endpoint list", want: "spec.endpoints: Invalid value: 0: spec.endpoints in body should have at least 1 items", yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  endpoints: []
  models: {allow: [claude-haiku-*]}
`)},
	{name: "Secret name that is no Kubernetes name", want: `spec.credentials.secretRef.name: Invalid value: "Anthropic_Key": must be a Secret name: lowercase letters, digits, '-' and '.'`, yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: Anthropic_Key, key: api_key}}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "empty end-user audience", want: `spec.endUser.issuers[0].audiences[0]: Invalid value: "": spec.endUser.issuers[0].audiences[0] in body should be at least 1 chars long`, yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models: {allow: [claude-haiku-*]}
  endUser:
    mode: Strict
    issuers: [{url: "https://idp.example", audiences: [""]}]
`)},
	{name: "empty allow list", want: "spec.models.allow: Invalid value: 0: spec.models.allow in body should have at least 1 items", yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models: {allow: []}
`)},
	{name: "alias target is a glob", want: "spec.models.aliases[0].target: Invalid value: \"claude-haiku-*\": must be a model name made of lowercase letters, digits, '.', '-' and '_' (no wildcards)", yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models:
    allow: [claude-haiku-*]
    aliases: [{name: fast, target: claude-haiku-*}]
`)},
	{name: "max tokens zero", want: "spec.models.maxTokens[0].limit: Invalid value: 0: spec.models.maxTokens[0].limit in body should be greater than or equal to 1", yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models:
    allow: [claude-haiku-*]
    maxTokens: [{model: claude-haiku-*, limit: 0}]
`)},
	{name: "max tokens action unknown", want: "spec.models.maxTokens[0].action: Unsupported value: \"Truncate\": supported values: \"Reject\", \"Clamp\"", yaml: policyWith(`
  podSelector: {}
  credentials: {secretRef: {name: key, key: api_key}}
  models:
    allow: [claude-haiku-*]
    maxTokens: [{model: claude-haiku-*, limit: 100, action: Truncate}]
`)},
	{name: "vault path absolute", want: "spec.credentials.vault.path: Invalid value: \"/tenants/b/key\": must be a relative path of letters, digits, '_', '.' and '-' segments, with no leading '/', empty, '.' or '..' segments", yaml: policyWith(`
  podSelector: {}
  credentials: {vault: {authMethod: cert, role: team-a, path: /tenants/b/key}}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "vault path escapes with dot-dot", want: "spec.credentials.vault.path: Invalid value: \"../team-b/anthropic\": must be a relative path of letters, digits, '_', '.' and '-' segments, with no leading '/', empty, '.' or '..' segments", yaml: policyWith(`
  podSelector: {}
  credentials: {vault: {authMethod: cert, role: team-a, path: ../team-b/anthropic}}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "vault path dot-dot in the middle", want: "spec.credentials.vault.path: Invalid value: \"a/../../b\": must be a relative path of letters, digits, '_', '.' and '-' segments, with no leading '/', empty, '.' or '..' segments", yaml: policyWith(`
  podSelector: {}
  credentials: {vault: {authMethod: cert, role: team-a, path: a/../../b}}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "vault jwt without audience", want: "spec.credentials.vault.audience: Required value: audience is required when authMethod is jwt", yaml: policyWith(`
  podSelector: {}
  credentials: {vault: {authMethod: jwt, role: team-a, path: anthropic}}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "vault auth method unknown", want: "spec.credentials.vault.authMethod: Unsupported value: \"userpass\": supported values: \"cert\", \"jwt\", \"kubernetes\"", yaml: policyWith(`
  podSelector: {}
  credentials: {vault: {authMethod: userpass, role: team-a, path: anthropic}}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "vault refresh too short", want: "spec.credentials.vault.refreshInterval: Invalid value: \"1s\": must be between 30s and 24h", yaml: policyWith(`
  podSelector: {}
  credentials: {vault: {authMethod: cert, role: team-a, path: anthropic, refreshInterval: 1s}}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "limit with neither requests nor tokens", want: "spec.limits.rules[0]: Invalid value: at least one of the fields in [requests tokens] must be set", yaml: policyWith(baseSpec + `
  limits:
    rules: [{name: rpm, window: Minute}]
`)},
	{name: "limit window not in the fixed set", want: "spec.limits.rules[0].window: Unsupported value: \"Fortnight\": supported values: \"Minute\", \"Hour\", \"Day\"", yaml: policyWith(baseSpec + `
  limits:
    rules: [{name: rpm, window: Fortnight, requests: 10}]
`)},
	{name: "limit requests zero", want: "spec.limits.rules[0].requests: Invalid value: 0: spec.limits.rules[0].requests in body should be greater than or equal to 1", yaml: policyWith(baseSpec + `
  limits:
    rules: [{name: rpm, window: Minute, requests: 0}]
`)},
	{name: "limit tokens negative", want: "spec.limits.rules[0].tokens: Invalid value: -5: spec.limits.rules[0].tokens in body should be greater than or equal to 1", yaml: policyWith(baseSpec + `
  limits:
    rules: [{name: tpm, window: Minute, tokens: -5}]
`)},
	{name: "limit name not a DNS label", want: "spec.limits.rules[0].name: Invalid value: \"Per_Minute\": must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit", yaml: policyWith(baseSpec + `
  limits:
    rules: [{name: Per_Minute, window: Minute, requests: 5}]
`)},
	{name: "budget with tokens and usd", want: "spec.budgets[0]: Invalid value: exactly one of the fields in [tokens usd] must be set", yaml: policyWith(baseSpec + `
  budgets: [{name: daily, window: Day, tokens: 1000, usd: "10"}]
`)},
	{name: "budget usd malformed", want: "spec.budgets[0].usd: Invalid value: \"ten dollars\": must be a positive decimal amount such as \"25\" or \"12.50\"", yaml: policyWith(baseSpec + `
  budgets: [{name: daily, window: Day, usd: "ten dollars"}]
`)},
	{name: "budget window not in the fixed set", want: "spec.budgets[0].window: Unsupported value: \"Minute\": supported values: \"Day\", \"Week\", \"Month\"", yaml: policyWith(baseSpec + `
  budgets: [{name: daily, window: Minute, tokens: 5}]
`)},
	{name: "budget enforcement not Soft or Hard", want: "spec.budgets[0].enforcement: Unsupported value: \"Strict\": supported values: \"Soft\", \"Hard\"", yaml: policyWith(baseSpec + `
  budgets: [{name: daily, window: Day, usd: "10", enforcement: Strict}]
`)},
	{name: "end user strict without issuers", want: "spec.endUser.issuers: Required value: at least one issuer is required unless mode is Disabled", yaml: policyWith(baseSpec + `
  endUser: {mode: Strict}
`)},
	{name: "end user issuer not https", want: "spec.endUser.issuers[0].url: Invalid value: \"http://idp.example\": must be an https URL", yaml: policyWith(baseSpec + `
  endUser:
    mode: Strict
    issuers: [{url: "http://idp.example", audiences: [claude]}]
`)},
	{name: "scope rule without scopes or groups", want: "spec.endUser.rules[0]: Invalid value: at least one of scopes or groups must be set", yaml: policyWith(baseSpec + `
  endUser:
    mode: Optional
    issuers: [{url: "https://idp.example", audiences: [claude]}]
    rules: [{models: [claude-haiku-*]}]
`)},
	{name: "end user algorithm HMAC", want: "spec.endUser.issuers[0].algorithms[0]: Unsupported value: \"HS256\"", yaml: policyWith(baseSpec + `
  endUser:
    mode: Strict
    issuers: [{url: "https://idp.example", audiences: [claude], algorithms: [HS256]}]
`)},
	{name: "end user ca bundle not PEM", want: "spec.endUser.issuers[0].caBundle: Invalid value: \"not a certificate\": must be a PEM bundle of CA certificates", yaml: policyWith(baseSpec + `
  endUser:
    mode: Strict
    issuers: [{url: "https://idp.example", audiences: [claude], caBundle: "not a certificate"}]
`)},
	{name: "end user clock skew too large", want: "spec.endUser.clockSkew: Invalid value: \"10m\": must be between 0s and 5m", yaml: policyWith(baseSpec + `
  endUser:
    mode: Strict
    issuers: [{url: "https://idp.example", audiences: [claude]}]
    clockSkew: 10m
`)},
	{name: "end user replay window too short", want: "spec.endUser.replayWindow: Invalid value: \"500ms\": must be at least 1s", yaml: policyWith(baseSpec + `
  endUser:
    mode: Strict
    issuers: [{url: "https://idp.example", audiences: [claude]}]
    replayProtection: true
    replayWindow: 500ms
`)},
	{name: "max request bytes too small", want: "spec.maxRequestBytes: Invalid value: 10: spec.maxRequestBytes in body should be greater than or equal to 1024", yaml: policyWith(baseSpec + `
  maxRequestBytes: 10
`)},
	{name: "unknown endpoint", want: "spec.endpoints[1]: Unsupported value: \"Files\": supported values: \"Messages\", \"CountTokens\", \"Models\"", yaml: policyWith(baseSpec + `
  endpoints: [Messages, Files]
`)},
	{name: "wif token URL not https", want: "spec.credentials.workloadIdentityFederation.tokenURL: Invalid value: \"http://token.example\": must be an https URL", yaml: policyWith(`
  podSelector: {}
  credentials: {workloadIdentityFederation: {audience: anthropic, federationRuleID: fdrl_1, organizationID: org_1, tokenURL: "http://token.example"}}
  models: {allow: [claude-haiku-*]}
`)},
	{name: "name too long", want: "<nil>: Invalid value: metadata.name must be at most 63 characters (it names the rendered ConfigMap)", yaml: `
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata:
  name: a-policy-name-that-is-much-longer-than-sixty-three-characters-in-total
  namespace: team-a
spec:` + baseSpec},
	{name: "full policy is valid", yaml: policyWith(`
  podSelector: {matchLabels: {app: chat}}
  credentials:
    vault: {authMethod: jwt, role: team-a, audience: vault, path: claude/prod, refreshInterval: 10m}
  models:
    allow: [claude-haiku-*, claude-sonnet-4-5]
    deny: [claude-haiku-3*]
    aliases: [{name: fast, target: claude-haiku-4-5}]
    maxTokens: [{model: claude-sonnet-*, limit: 64000, action: Clamp}]
  endUser:
    mode: Strict
    issuers: [{url: "https://idp.example", audiences: [claude]}]
    groupsClaim: groups
    subjectClaim: email
    clockSkew: 1m
    rules: [{scopes: [basic], models: [claude-haiku-*], maxTokens: 4096}]
    replayProtection: true
    replayWindow: 10m
  limits:
    backend: Redis
    failureMode: FailOpen
    rules:
    - {name: rpm, key: Workload, window: Minute, requests: 60}
    - {name: user-tpd, key: EndUser, window: Day, tokens: 1000000, tokenType: Output}
  budgets: [{name: monthly, key: Namespace, window: Month, usd: "250.00"}]
  endpoints: [Messages, CountTokens]
  maxRequestBytes: 1048576
  allowStreaming: false
  audit: {endUserSubject: true}
`)},
}

var tenantCases = []validationCase{
	{name: "minimal tenant is valid", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
`)},
	{name: "vault source without vault settings", want: "spec.credentials.vault: Required value: vault must be set when allowedSources includes Vault", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  credentials: {allowedSources: [Vault]}
`)},
	{name: "vault prefix with dot-dot", want: "spec.credentials.vault.pathPrefix: Invalid value: \"tenants/../b\": must be a relative path of letters, digits, '_', '.' and '-' segments, with no leading '/', empty, '.' or '..' segments", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  credentials:
    vault: {pathPrefix: tenants/../b, roles: [a]}
`)},
	{name: "vault without roles", want: "spec.credentials.vault.roles: Invalid value: 0: spec.credentials.vault.roles in body should have at least 1 items", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  credentials:
    vault: {pathPrefix: tenants/a, roles: []}
`)},
	{name: "unknown credential source", want: "spec.credentials.allowedSources[0]: Unsupported value: \"EnvVar\": supported values: \"Vault\", \"SecretRef\", \"WorkloadIdentityFederation\"", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  credentials: {allowedSources: [EnvVar]}
`)},
	{name: "tenant max tokens zero", want: "spec.models.maxTokens: Invalid value: 0: spec.models.maxTokens in body should be greater than or equal to 1", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*], maxTokens: 0}
`)},
	{name: "tenant model glob malformed", want: "spec.models.allow[0]: Invalid value: \"claude opus\": must be a model name or glob made of lowercase letters, digits, '.', '-', '_' and single '*' (e.g. claude-haiku-*)", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: ["claude opus"]}
`)},
	{name: "tenant trust domain malformed", want: "spec.spiffe.trustDomain: Invalid value: \"spiffe://Example.org\": spec.spiffe.trustDomain in body should match '^[a-z0-9._-]+$'", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  spiffe: {trustDomain: "spiffe://Example.org"}
`)},
	{name: "namespace selector selecting everything", want: "spec.namespaceSelector: Required value: must select by at least one label (matchLabels or matchExpressions): an empty selector would select every namespace", yaml: tenantWith(`
  namespaceSelector: {}
  models: {allow: [claude-*]}
`)},
	{name: "empty Vault role", want: `spec.credentials.vault.roles[0]: Invalid value: "": spec.credentials.vault.roles[0] in body should be at least 1 chars long`, yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  credentials:
    vault: {pathPrefix: tenants/a, roles: [""]}
`)},
	{name: "tenant limit per session", want: "spec.limits: Invalid value: a tenant ceiling cannot be counted per Session: the client chooses its session ids, so such a ceiling bounds nothing; use Workload, EndUser or Namespace", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  limits: [{name: ns, key: Namespace, window: Hour, requests: 10}, {name: sess, key: Session, window: Hour, tokens: 1000}]
`)},
	{name: "tenant budget per session", want: "spec.budgets: Invalid value: a tenant ceiling cannot be counted per Session", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  budgets: [{name: sess, key: Session, window: Day, tokens: 1000}]
`)},
	{name: "tenant failure mode unknown", want: "spec.limitsFailureMode: Unsupported value: \"FailSoft\": supported values: \"FailClosed\", \"FailOpen\"", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  limitsFailureMode: FailSoft
`)},
	{name: "tenant limit without requests or tokens", want: "spec.limits[0]: Invalid value: at least one of the fields in [requests tokens] must be set", yaml: tenantWith(`
  namespaceSelector: {matchLabels: {tenant: a}}
  models: {allow: [claude-*]}
  limits: [{name: ns, key: Namespace, window: Hour}]
`)},
}

func tenantWith(spec string) string {
	return `
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeTenant
metadata:
  name: NAME
spec:
` + spec
}

func revocationWith(spec string) string {
	return `
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeRevocation
metadata:
  name: NAME
  namespace: team-a
spec:
` + spec
}

var revocationCases = []validationCase{
	{name: "a token", yaml: revocationWith(`
  issuer: https://login.example.com/realms/team-a
  jti: 4f1c2a9e
  expiresAt: "2030-01-01T00:00:00Z"
`)},
	{name: "a user", yaml: revocationWith(`
  issuer: https://login.example.com/realms/team-a
  subject: alice
  reason: left the company
`)},
	{name: "neither jti nor subject", want: "spec: Invalid value: set exactly one of jti (one token) and subject (every token of one user)", yaml: revocationWith(`
  issuer: https://login.example.com/realms/team-a
`)},
	{name: "both jti and subject", want: "spec: Invalid value: set exactly one of jti (one token) and subject (every token of one user)", yaml: revocationWith(`
  issuer: https://login.example.com/realms/team-a
  jti: x
  subject: alice
`)},
	{name: "an empty subject", want: "spec.subject: Invalid value: \"\": spec.subject in body should be at least 1 chars long", yaml: revocationWith(`
  issuer: https://login.example.com/realms/team-a
  subject: ""
`)},
	{name: "an issuer that is not a URL", want: "spec.issuer: Invalid value: \"login.example.com\": spec.issuer in body should match", yaml: revocationWith(`
  issuer: login.example.com
  subject: alice
`)},
}
