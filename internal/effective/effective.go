// Package effective computes the policy a sidecar enforces: a ClaudeAccessPolicy narrowed by the
// ClaudeTenant that selects its namespace, with the operator's defaults, as a policyconfig.Config.
//
// Everything here is a pure function of its inputs so that every ceiling rule is table-tested without an
// API server. The controller turns the Violations into status conditions and events.
package effective

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/glob"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// NoTenantMode is what the operator does with a policy whose namespace no ClaudeTenant selects.
type NoTenantMode string

const (
	// NoTenantDeny renders a deny-all config: the safe default for multi-tenant clusters.
	NoTenantDeny NoTenantMode = "Deny"
	// NoTenantAllow admits the policy as written, for single-tenant clusters and demos.
	NoTenantAllow NoTenantMode = "Allow"
)

// Options are the operator-wide inputs to every effective policy.
type Options struct {
	NoTenant     NoTenantMode
	VaultAddress string
	// VaultCACert is the PEM bundle sidecars use to verify Vault.
	VaultCACert string
	// VaultAuthMounts maps a Vault auth method (cert, jwt, kubernetes) to the path it is mounted at,
	// for Vaults that mount a method elsewhere than its own name (e.g. one kubernetes mount per
	// cluster). A method not listed is mounted at its name.
	VaultAuthMounts map[string]string
	// VaultAudiences are the JWT audiences the operator's Vault accepts (its jwt roles' bound audiences,
	// the kubernetes auth audience). A federation audience among them is refused: the token endpoint
	// would hold a JWT-SVID it could log in to Vault with.
	VaultAudiences []string
	// RedisURL is rendered into every policy with backend Redis. With RedisUsers it carries no
	// credentials: each sidecar then authenticates as its namespace's ACL user (limits.redisUser) with
	// the password the webhook mounts.
	RedisURL   string
	RedisUsers bool
	// RedisBroker, with RedisUsers, is the operator's Redis credential broker, rendered into every
	// config of its trust domain that uses a namespace user: those sidecars get the password with their
	// SVID and no Secret holds it. Configs without an identity in the broker's trust domain keep the
	// mounted Secret.
	RedisBroker *policyconfig.RedisBroker
	Upstream    string
	// Listen and MetricsListen are the sidecar's proxy and metrics addresses, rendered into every config
	// (inject.ProxyListen and inject.MetricsListen, which the webhook also passes as flags). Empty
	// renders the sidecar's defaults.
	Listen, MetricsListen string
	// MetricsTokenSHA256 is rendered into every config (policyconfig.Server): sidecars then serve
	// /metrics and /readyz's details only to the bearer of the operator's metrics token.
	MetricsTokenSHA256 string
	// TrustDomain is used when the tenant does not set one; empty disables SPIFFE.
	TrustDomain string
}

// Violation is one reason a policy cannot be admitted.
type Violation struct {
	Reason string
	// Message names the offending field and value, and the object that forbids it.
	Message string
}

// Input is what Compute needs: the policy and, if exactly one selects its namespace, its tenant.
type Input struct {
	Policy *v1alpha1.ClaudeAccessPolicy
	// Tenant is nil when no tenant selects the namespace.
	Tenant *v1alpha1.ClaudeTenant
	// ConflictingTenants is set when more than one tenant selects the namespace.
	ConflictingTenants []string
	// Prices are the cluster's prices (internal/pricing.Resolve), rendered into a config with a USD
	// budget; every model such a config allows must be priced.
	Prices []policyconfig.Price
}

// useRedis has c count in the operator's Redis, as the namespace's own Redis user when the operator
// manages them; false when the operator has no Redis.
func useRedis(c *policyconfig.Config, namespace string, o Options) bool {
	if o.RedisURL == "" {
		return false
	}
	c.Limits.Backend, c.Limits.RedisURL = policyconfig.BackendRedis, o.RedisURL
	if o.RedisUsers {
		c.Limits.RedisUser = wellknown.RedisUser(namespace)
	}
	return true
}

// Compute returns the effective config, or the violations that keep the policy from being admitted.
func Compute(in Input, o Options) (*policyconfig.Config, []Violation) {
	p := in.Policy
	if len(in.ConflictingTenants) > 1 {
		return nil, []Violation{{v1alpha1.ReasonTenantConflict, fmt.Sprintf("namespace %s is selected by more than one ClaudeTenant; no tenant applies until the platform team removes the overlap (the ClaudeTenants' status names them)", p.Namespace)}}
	}
	if in.Tenant == nil && o.NoTenant != NoTenantAllow {
		return nil, []Violation{{v1alpha1.ReasonNoTenant, fmt.Sprintf("namespace %s is not selected by any ClaudeTenant and the operator denies such namespaces by default", p.Namespace)}}
	}
	c := base(p, o)
	var vs []Violation
	vs = append(vs, credentials(c, p, in.Tenant, o)...)
	if t := in.Tenant; t != nil {
		c.Policy.Tenant = t.Name
		vs = append(vs, narrow(c, p, t)...)
		vs = append(vs, tenantBackend(c, p, t, o)...)
	}
	vs = append(vs, identity(c, p, in.Tenant)...)
	vs = append(vs, prices(c, p, in.Prices)...)
	if len(vs) > 0 {
		return nil, vs
	}
	brokerRedis(c, o.RedisBroker)
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		// The API server's validation should make this unreachable; fail closed if it is not.
		return nil, []Violation{{v1alpha1.ReasonExceedsTenantCeiling, err.Error()}}
	}
	return c, nil
}

// brokerRedis has c's sidecars get their namespace user's password from broker b when they can
// authenticate to it: an identity in the broker's trust domain.
func brokerRedis(c *policyconfig.Config, b *policyconfig.RedisBroker) {
	if b == nil || c.Limits.RedisUser == "" || c.Identity.TrustDomain == "" {
		return
	}
	if id, err := spiffeid.FromString(b.ID); err == nil && id.TrustDomain().Name() == c.Identity.TrustDomain {
		c.Limits.RedisBroker = &policyconfig.RedisBroker{URL: b.URL, ID: b.ID}
	}
}

// server is the server section every config gets.
func server(o Options) policyconfig.Server {
	return policyconfig.Server{Upstream: o.Upstream, Listen: o.Listen, MetricsListen: o.MetricsListen, MetricsTokenSHA256: o.MetricsTokenSHA256}
}

// Deny returns the fail-closed config rendered for a policy that is not admitted: it denies every call,
// and serves where an admitted config would (the kubelet probes its metrics address).
func Deny(p *v1alpha1.ClaudeAccessPolicy, tenant string, vs []Violation, o Options) *policyconfig.Config {
	c := &policyconfig.Config{
		APIVersion: policyconfig.APIVersion,
		Kind:       policyconfig.Kind,
		Policy:     ref(p, tenant),
		Server:     server(o),
		Deny:       &policyconfig.Deny{Reason: denyReason(p, vs)},
		Models:     policyconfig.Models{Allow: []string{}},
	}
	c.ApplyDefaults()
	return c
}

// denyReason is what callers of a policy that is not admitted are told: the reasons by name and where
// to read the rest. The violations' messages name tenants, Vault prefixes and roles, and the platform's
// ceilings, which the policy's status shows to those who may read it, not to every caller (in gateway
// mode, any end user).
func denyReason(p *v1alpha1.ClaudeAccessPolicy, vs []Violation) string {
	var reasons []string
	for _, v := range vs {
		if !slices.Contains(reasons, v.Reason) {
			reasons = append(reasons, v.Reason)
		}
	}
	return fmt.Sprintf("ClaudeAccessPolicy %s/%s is not admitted (%s); its status says why: kubectl describe claudeaccesspolicy %s -n %s",
		p.Namespace, p.Name, strings.Join(reasons, ", "), p.Name, p.Namespace)
}

// Messages joins the messages of several violations (or warnings), in their order, for one condition
// message or deny reason.
func Messages(vs []Violation) string {
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = v.Message
	}
	return strings.Join(msgs, "; ")
}

func ref(p *v1alpha1.ClaudeAccessPolicy, tenant string) policyconfig.PolicyRef {
	return policyconfig.PolicyRef{Namespace: p.Namespace, Name: p.Name, Generation: p.Generation, Tenant: tenant}
}

// base translates the policy as written, before any tenant narrowing.
func base(p *v1alpha1.ClaudeAccessPolicy, o Options) *policyconfig.Config {
	s := &p.Spec
	c := &policyconfig.Config{
		APIVersion: policyconfig.APIVersion,
		Kind:       policyconfig.Kind,
		Policy:     ref(p, ""),
		Server:     server(o),
		Identity:   policyconfig.Identity{TrustDomain: o.TrustDomain, Namespace: p.Namespace},
		Endpoints:  endpoints(s.Endpoints),
		Models:     models(&s.Models),
		ShadowMode: s.ShadowMode,
	}
	if s.MaxRequestBytes != nil {
		c.MaxRequestBytes = *s.MaxRequestBytes
	}
	if s.AllowStreaming != nil && !*s.AllowStreaming {
		c.DenyStreaming = true
	}
	if s.EndUser != nil {
		c.EndUser = endUser(s.EndUser)
	}
	if l := s.Limits; l != nil {
		c.Limits = policyconfig.Limits{Backend: string(l.Backend), FailureMode: string(l.FailureMode), Rules: limitRules(l.Rules, policyconfig.SourcePolicy)}
	}
	if c.Limits.Backend == policyconfig.BackendRedis && !useRedis(c, p.Namespace, o) {
		// No Redis configured (the chart's redis.url is empty): such policies count locally in each
		// pod, as values.yaml promises. A sidecar refuses backend Redis without a URL.
		c.Limits.Backend = policyconfig.BackendLocal
	}
	c.Budgets = budgets(s.Budgets, policyconfig.SourcePolicy)
	if a := s.Audit; a != nil {
		c.Audit = policyconfig.Audit{OmitEndUser: a.EndUserSubject != nil && !*a.EndUserSubject, EndUserMetricLabel: a.EndUserMetricLabel}
	}
	return c
}

func endpoints(es []v1alpha1.Endpoint) []string {
	var out []string
	for _, e := range es {
		switch e {
		case v1alpha1.EndpointMessages:
			out = append(out, policyconfig.PathMessages)
		case v1alpha1.EndpointCountTokens:
			out = append(out, policyconfig.PathCountTokens)
		case v1alpha1.EndpointModels:
			out = append(out, policyconfig.PathModels, policyconfig.PathModel)
		}
	}
	return out
}

func patterns(ps []v1alpha1.ModelPattern) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

func models(m *v1alpha1.ModelPolicy) policyconfig.Models {
	out := policyconfig.Models{Allow: patterns(m.Allow), Deny: patterns(m.Deny)}
	if len(m.Aliases) > 0 {
		out.Aliases = make(map[string]string, len(m.Aliases))
		for _, a := range m.Aliases {
			out.Aliases[string(a.Name)] = string(a.Target)
		}
	}
	for _, mt := range m.MaxTokens {
		out.MaxTokens = append(out.MaxTokens, policyconfig.MaxTokensRule{Model: string(mt.Model), Limit: mt.Limit, Action: string(mt.Action)})
	}
	return out
}

func endUser(e *v1alpha1.EndUserPolicy) *policyconfig.EndUser {
	out := &policyconfig.EndUser{Mode: string(e.Mode), Header: e.Header, GroupsClaim: e.GroupsClaim, SubjectClaim: e.SubjectClaim, Tokenless: string(e.Tokenless)}
	if e.ClockSkew != nil {
		out.ClockSkew.Duration = e.ClockSkew.Duration
	}
	for _, is := range e.Issuers {
		out.Issuers = append(out.Issuers, policyconfig.Issuer{URL: is.URL, Audiences: append([]string(nil), is.Audiences...),
			Algorithms: append([]string(nil), is.Algorithms...), CACert: is.CABundle})
	}
	for _, r := range e.Rules {
		pr := policyconfig.ScopeRule{Scopes: r.Scopes, Groups: r.Groups, Models: patterns(r.Models)}
		if r.MaxTokens != nil {
			pr.MaxTokens = *r.MaxTokens
		}
		out.Rules = append(out.Rules, pr)
	}
	if e.ReplayProtection {
		out.Replay = &policyconfig.Replay{}
		if e.ReplayWindow != nil {
			out.Replay.Window.Duration = e.ReplayWindow.Duration
		}
	}
	return out
}

func limitRules(rs []v1alpha1.RateLimit, source string) []policyconfig.LimitRule {
	var out []policyconfig.LimitRule
	for _, r := range rs {
		lr := policyconfig.LimitRule{Name: string(r.Name), Source: source, Key: string(r.Key), Window: string(r.Window), TokenType: string(r.TokenType)}
		if lr.Key == "" {
			lr.Key = policyconfig.KeyWorkload
		}
		if r.Requests != nil {
			lr.Requests = *r.Requests
		}
		if r.Tokens != nil {
			lr.Tokens = *r.Tokens
		}
		out = append(out, lr)
	}
	return out
}

func budgets(bs []v1alpha1.Budget, source string) []policyconfig.Budget {
	var out []policyconfig.Budget
	for _, b := range bs {
		pb := policyconfig.Budget{Name: string(b.Name), Source: source, Key: string(b.Key), Window: string(b.Window), USD: b.USD, TokenType: string(b.TokenType), Enforcement: string(b.Enforcement)}
		if pb.Key == "" {
			pb.Key = policyconfig.KeyNamespace
		}
		if b.Tokens != nil {
			pb.Tokens = *b.Tokens
		}
		out = append(out, pb)
	}
	return out
}

// ModelsSummary is the short list of allowed models shown by `kubectl get cap`.
func ModelsSummary(p *v1alpha1.ClaudeAccessPolicy) string {
	s := strings.Join(patterns(p.Spec.Models.Allow), ",")
	const max = 64
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}

// coveredBy reports whether every pattern in the tenant's allow list covers p.
func coveredBy(t *v1alpha1.ClaudeTenant, p string) bool {
	return glob.AnyCovers(patterns(t.Spec.Models.Allow), p)
}
