// Package decide is the sidecar's pure decision pipeline: given the compiled policy and one request
// (method, path, body), it says whether the request may go upstream, which rule refused it, and which
// rewrites (model alias, max_tokens clamp) to apply. It does no I/O; limits, which need shared state, are
// checked by the proxy after a request passes here.
package decide

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/claude-guard/claude-guard/internal/glob"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/bodyscan"
)

// Rule names, as they appear in denials, audit records and metrics.
const (
	RuleDeny          = "deny"
	RuleEndpoints     = "endpoints"
	RuleMaxBytes      = "maxRequestBytes"
	RuleBody          = "body"
	RuleModelRequired = "models.required"
	RuleModelDeny     = "models.deny"
	RuleModelAllow    = "models.allow"
	RuleMaxTokens     = "models.maxTokens"
	RuleStreaming     = "denyStreaming"
	RuleScopes        = "endUser.rules"
	RuleMethod        = "method"
)

// Error types of the Anthropic API.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeTooLarge       = "request_too_large"
	TypeRateLimit      = "rate_limit_error"
	TypeAPI            = "api_error"
	TypeOverloaded     = "overloaded_error"
)

// AllowedMethods is the value of the Allow header for path: the methods the Anthropic API defines
// there. Messages and count_tokens take POST, the models endpoints GET; other endpoints a policy allows
// (batches, files) keep the API's GET, POST and DELETE. Anything else (PUT, PATCH, HEAD, OPTIONS,
// TRACE, CONNECT) is refused before it reaches the upstream, so a method the policy never considered
// cannot be forwarded by accident.
func AllowedMethods(path string) string {
	switch {
	case hasModelBody(path):
		return http.MethodPost
	case path == policyconfig.PathModels || strings.HasPrefix(path, modelPathPrefix):
		return http.MethodGet
	}
	return "GET, POST, DELETE"
}

// methodAllowed is AllowedMethods as a check, without splitting the header value (it runs per request).
func methodAllowed(path, method string) bool {
	switch allowed := AllowedMethods(path); allowed {
	case http.MethodPost, http.MethodGet:
		return method == allowed
	}
	return method == http.MethodGet || method == http.MethodPost || method == http.MethodDelete
}

// Denial is why a request is refused, ready to be written as an Anthropic-shaped error.
type Denial struct {
	Rule    string
	Status  int
	Type    string
	Message string
	// Shadow is set when shadow mode lets the request through despite this denial: it is recorded
	// (audit decision shadow_deny), never returned. Every stage that refuses sets it the same way.
	Shadow bool
}

// Policy is a compiled config. It is immutable; a reload compiles a new one.
type Policy struct {
	Config *policyconfig.Config
	// Hash identifies the config document (for logs and metrics).
	Hash string

	exact    map[string]bool
	prefixes []string
	aliases  map[string]string
}

// Compile prepares cfg for fast decisions. cfg must already be validated.
func Compile(cfg *policyconfig.Config, hash string) *Policy {
	p := &Policy{Config: cfg, Hash: hash, exact: map[string]bool{}, aliases: cfg.Models.Aliases}
	for _, e := range cfg.Endpoints {
		if pre, ok := strings.CutSuffix(e, "*"); ok {
			p.prefixes = append(p.prefixes, pre)
		} else {
			p.exact[e] = true
		}
	}
	return p
}

// Request is the part of an HTTP request the decision needs.
type Request struct {
	Method string
	// Path is the URL path (without query), as the client sent it.
	Path string
	// Body is the request body; nil for requests without one. It may be rewritten in place.
	Body []byte
	// User is the verified end user, nil when the request carries no end-user token.
	User *User
}

// User is what the scope rules read from a verified end-user token.
type User struct {
	Scopes []string
	Groups []string
}

// Decision is the outcome for one request.
type Decision struct {
	// Denial is the first rule that refused the request; nil when it may go upstream. In shadow mode
	// it is set with Denial.Shadow.
	Denial *Denial
	// Body is the body to forward (rewritten when Aliased or Clamped).
	Body []byte
	// Fields are what the body scan found (after rewrites).
	Fields bodyscan.Fields
	// Model is the effective model (after aliasing), "" when the request names none.
	Model string
	// Aliased is set when the model was rewritten from an alias; RequestedModel is what the client sent.
	Aliased        bool
	RequestedModel string
	// Path is the path to forward when it differs from the request's (GET /v1/models/{alias}), else "".
	Path string
	// ClampedFrom is the client's max_tokens when it was clamped, else 0.
	ClampedFrom int64
	// ThinkingClampedFrom is the client's thinking.budget_tokens when the clamp had to lower it too,
	// else 0.
	ThinkingClampedFrom int64
}

// MinThinkingBudget is the smallest thinking.budget_tokens the API accepts.
const MinThinkingBudget = 1024

// modelPathPrefix starts the path of a call that names a model in its path (GET /v1/models/{id}).
const modelPathPrefix = policyconfig.PathModels + "/"

// hasModelBody reports whether path is one whose JSON body must carry a model the policy restricts.
func hasModelBody(path string) bool {
	return path == policyconfig.PathMessages || path == policyconfig.PathCountTokens
}

// Decide runs every rule in order and returns the first denial (or none) and the rewritten body. It
// never fails: a request it cannot read is denied.
//
// It is one long function on purpose: the rules run in one visible order (the first denial wins, so the
// order is the behaviour), each a few lines reading the one scan of the body; helpers would hide that
// order and cost on the hot path (BenchmarkDecide: 1 alloc per call).
func (p *Policy) Decide(r Request) Decision {
	d := Decision{Body: r.Body}
	refuse := func(dn *Denial) Decision {
		dn.Shadow = p.Config.ShadowMode
		d.Denial = dn
		return d
	}
	deny := func(rule string, status int, typ, format string, args ...any) Decision {
		return refuse(&Denial{Rule: rule, Status: status, Type: typ, Message: fmt.Sprintf(format, args...)})
	}
	c := p.Config
	if c.Deny != nil {
		// A deny-all config fails closed even in shadow mode: it means the policy itself is not admitted.
		d = deny(RuleDeny, http.StatusForbidden, TypePermission, "claude-guard: all requests are denied by policy (rule deny): %s", c.Deny.Reason)
		d.Denial.Shadow = false
		return d
	}
	if !p.endpointAllowed(r.Path) {
		return deny(RuleEndpoints, http.StatusForbidden, TypePermission,
			"claude-guard: endpoint %s %s is not in the policy's endpoint allow-list (rule endpoints)", r.Method, safePath(r.Path))
	}
	if !methodAllowed(r.Path, r.Method) {
		// Enforced even in shadow mode, like a malformed body: it is not a policy question.
		d = deny(RuleMethod, http.StatusMethodNotAllowed, TypeInvalidRequest,
			"claude-guard: method %s is not allowed on %s (allowed: %s; rule method)", safeMethod(r.Method), safePath(r.Path), AllowedMethods(r.Path))
		d.Denial.Shadow = false
		return d
	}
	if hasModelBody(r.Path) && len(r.Body) == 0 {
		d = deny(RuleBody, http.StatusBadRequest, TypeInvalidRequest, "claude-guard: request body refused: %s needs a JSON body (rule body)", r.Path)
		d.Denial.Shadow = false
		return d
	}
	if int64(len(r.Body)) > c.MaxRequestBytes {
		return deny(RuleMaxBytes, http.StatusRequestEntityTooLarge, TypeTooLarge,
			"claude-guard: request body of %d bytes exceeds the policy's limit of %d bytes (rule maxRequestBytes)", len(r.Body), c.MaxRequestBytes)
	}
	if id, ok := strings.CutPrefix(r.Path, modelPathPrefix); ok {
		// The path is clean (endpointAllowed), so id is what the upstream will read as the model id.
		d.Model, d.RequestedModel = id, id
		if target, ok := p.aliases[id]; ok {
			d.Model, d.Aliased, d.Path = target, true, modelPathPrefix+target
		}
		if dn := p.modelDenial(d.Model); dn != nil {
			return refuse(dn)
		}
		if _, dn := p.userGrant(r.User, d.Model); dn != nil {
			return refuse(dn)
		}
	}
	if r.Method != http.MethodPost || len(r.Body) == 0 {
		return d
	}
	if !hasModelBody(r.Path) && !looksLikeObject(r.Body) {
		// Another allowed endpoint with a non-JSON body (e.g. a multipart upload): no model to check.
		return d
	}
	f, err := bodyscan.Scan(r.Body)
	if err != nil {
		// Malformed input is refused even in shadow mode: forwarding it would mean the upstream might
		// read a request the policy never saw.
		d = deny(RuleBody, http.StatusBadRequest, TypeInvalidRequest, "claude-guard: request body refused: %v (rule body)", err)
		d.Denial.Shadow = false
		return d
	}
	d.Fields = f
	if !f.HasModel {
		if hasModelBody(r.Path) {
			return deny(RuleModelRequired, http.StatusBadRequest, TypeInvalidRequest, "claude-guard: model: field required")
		}
		return d
	}
	d.Model, d.RequestedModel = f.Model, f.Model
	if target, ok := p.aliases[f.Model]; ok {
		d.Body = bodyscan.SetModel(d.Body, &d.Fields, target)
		d.Model, d.Aliased = target, true
	}
	if dn := p.modelDenial(d.Model); dn != nil {
		return refuse(dn)
	}
	grant, dn := p.userGrant(r.User, d.Model)
	if dn != nil {
		return refuse(dn)
	}
	if f.HasMaxTokens {
		action := policyconfig.ActionReject
		for _, mt := range c.Models.MaxTokens {
			if !glob.Match(mt.Model, d.Model) {
				continue
			}
			action = mt.Action
			what, args := "the policy's ceiling of %d for model %q (rule models.maxTokens %q)", []any{mt.Limit, safeModel(d.Model), mt.Model}
			if mt.Source == policyconfig.SourceTenant {
				// The platform's ceilings stay in the policy's status: callers (in gateway mode, any
				// end user) learn that there is one, not its value.
				what, args = "the platform's ceiling for model %q (rule models.maxTokens %q)", []any{safeModel(d.Model), mt.Model}
			}
			if dn := p.ceiling(&d, mt.Limit, mt.Action, what, RuleMaxTokens, args...); dn != nil {
				return refuse(dn)
			}
			break
		}
		if grant.limit > 0 {
			if dn := p.ceiling(&d, grant.limit, action, "the %d allowed for model %q by the end user's %s (rule endUser.rules)", RuleScopes, grant.limit, safeModel(d.Model), grant.by); dn != nil {
				return refuse(dn)
			}
		}
	}
	if f.Stream && c.DenyStreaming {
		return deny(RuleStreaming, http.StatusForbidden, TypePermission, "claude-guard: streaming is not allowed by policy (rule denyStreaming)")
	}
	return d
}

// ceiling applies one max_tokens ceiling: Clamp rewrites the body (not in shadow mode, which never
// changes a request), Reject returns a denial whose message is "max_tokens N exceeds " + what.
func (p *Policy) ceiling(d *Decision, limit int64, action, what, rule string, args ...any) *Denial {
	if d.Fields.MaxTokens <= limit {
		return nil
	}
	if action == policyconfig.ActionClamp {
		if p.Config.ShadowMode {
			return nil
		}
		if th := d.Fields.Thinking; th.HasBudget && th.Type == bodyscan.ThinkingEnabled && th.Budget >= limit {
			// The API needs budget_tokens below max_tokens: a clamp that left the client's budget
			// would turn an allowed request into the upstream's 400 about a value the client never sent.
			if limit-1 < MinThinkingBudget {
				return &Denial{Rule: rule, Status: http.StatusBadRequest, Type: TypeInvalidRequest,
					Message: fmt.Sprintf("claude-guard: max_tokens %d exceeds "+what+", and at that ceiling extended thinking has no room "+
						"(thinking.budget_tokens must be at least %d and below max_tokens): lower max_tokens or turn thinking off",
						append(append([]any{d.Fields.MaxTokens}, args...), MinThinkingBudget)...)}
			}
			if d.ThinkingClampedFrom == 0 {
				d.ThinkingClampedFrom = th.Budget
			}
			d.Body = bodyscan.SetThinkingBudget(d.Body, &d.Fields, limit-1)
		}
		if d.ClampedFrom == 0 {
			d.ClampedFrom = d.Fields.MaxTokens
		}
		d.Body = bodyscan.SetMaxTokens(d.Body, &d.Fields, limit)
		return nil
	}
	return &Denial{Rule: rule, Status: http.StatusBadRequest, Type: TypeInvalidRequest,
		Message: fmt.Sprintf("claude-guard: max_tokens %d exceeds "+what, append([]any{d.Fields.MaxTokens}, args...)...)}
}

// modelDenial applies models.deny, then models.allow, to an effective (already aliased) model.
func (p *Policy) modelDenial(model string) *Denial {
	for _, pat := range p.Config.Models.Deny {
		if glob.Match(pat, model) {
			return &Denial{Rule: RuleModelDeny, Status: http.StatusForbidden, Type: TypePermission,
				Message: fmt.Sprintf("claude-guard: model %q is denied by policy (rule models.deny %q)", safeModel(model), pat)}
		}
	}
	for _, pat := range p.Config.Models.Allow {
		if glob.Match(pat, model) {
			return nil
		}
	}
	return &Denial{Rule: RuleModelAllow, Status: http.StatusForbidden, Type: TypePermission,
		Message: fmt.Sprintf("claude-guard: model %q is not in the policy's allowed models (rule models.allow)", safeModel(model))}
}

// Usable reports whether a request for model (an id or one of the policy's aliases) by user could be
// allowed by the model rules and the user's scope rules: what GET /v1/models lists.
func (p *Policy) Usable(model string, u *User) bool {
	if target, ok := p.aliases[model]; ok {
		model = target
	}
	if p.Config.Deny != nil || p.modelDenial(model) != nil {
		return false
	}
	_, dn := p.userGrant(u, model)
	return dn == nil
}

// Aliases returns the policy's model aliases (alias to model); the map must not be changed.
func (p *Policy) Aliases() map[string]string { return p.aliases }

// grant is what the end user's scope rules allow for one model.
type grant struct {
	// limit is the max_tokens ceiling; 0 means none from the scope rules.
	limit int64
	// by names what granted it, for messages ("scope \"pro\"").
	by string
}

// userGrant applies the end-user scope rules to a model. Without rules the workload policy alone
// applies; without a verified user (Optional mode and no token) the lowest tier does (lowestTier), or
// the workload policy when the policy says tokenless Policy. Otherwise the model must be granted by a
// rule the user matches; among those, the most permissive ceiling applies.
func (p *Policy) userGrant(u *User, model string) (grant, *Denial) {
	eu := p.Config.EndUser
	if eu == nil || len(eu.Rules) == 0 {
		return grant{}, nil
	}
	if u == nil {
		if eu.Mode != policyconfig.EndUserOptional || eu.Tokenless == policyconfig.TokenlessPolicy {
			return grant{}, nil
		}
		return lowestTier(eu.Rules, model)
	}
	var g grant
	found := false
	var needScopes, needGroups []string
	for _, r := range eu.Rules {
		if !slices.ContainsFunc(r.Models, func(pat string) bool { return glob.Match(pat, model) }) {
			continue
		}
		by := matchedBy(r, u)
		if by == "" {
			needScopes = appendNew(needScopes, r.Scopes...)
			needGroups = appendNew(needGroups, r.Groups...)
			continue
		}
		switch {
		case !found:
			g = grant{limit: r.MaxTokens, by: by}
		case g.limit != 0 && (r.MaxTokens == 0 || r.MaxTokens > g.limit):
			g = grant{limit: r.MaxTokens, by: by}
		}
		found = true
	}
	if found {
		return g, nil
	}
	msg := fmt.Sprintf("claude-guard: model %q is not granted to any end user by the policy's scope rules (rule endUser.rules)", safeModel(model))
	if len(needScopes)+len(needGroups) > 0 {
		msg = fmt.Sprintf("claude-guard: model %q requires %s; the end-user token carries none of them (rule endUser.rules)", safeModel(model), describeNeed(needScopes, needGroups))
	}
	return grant{}, &Denial{Rule: RuleScopes, Status: http.StatusForbidden, Type: TypePermission, Message: msg}
}

// lowestTier is what a request without an end-user token gets in Optional mode (unless the policy
// says tokenless Policy): only what every scope rule grants, under the smallest of their ceilings, so
// leaving the token out never gets more than the least-privileged token would.
func lowestTier(rules []policyconfig.ScopeRule, model string) (grant, *Denial) {
	g := grant{by: "lowest tier (the request has no end-user token)"}
	for _, r := range rules {
		if !slices.ContainsFunc(r.Models, func(pat string) bool { return glob.Match(pat, model) }) {
			return grant{}, &Denial{Rule: RuleScopes, Status: http.StatusForbidden, Type: TypePermission,
				Message: fmt.Sprintf("claude-guard: model %q needs an end-user token: a request without one gets only what every scope rule grants (rule endUser.tokenless)", safeModel(model))}
		}
		if r.MaxTokens != 0 && (g.limit == 0 || r.MaxTokens < g.limit) {
			g.limit = r.MaxTokens
		}
	}
	return g, nil
}

// matchedBy returns which scope or group of u grants rule r, "" when none does.
func matchedBy(r policyconfig.ScopeRule, u *User) string {
	for _, s := range r.Scopes {
		if slices.Contains(u.Scopes, s) {
			return fmt.Sprintf("scope %q", s)
		}
	}
	for _, g := range r.Groups {
		if slices.Contains(u.Groups, g) {
			return fmt.Sprintf("group %q", g)
		}
	}
	return ""
}

func describeNeed(scopes, groups []string) string {
	var parts []string
	if len(scopes) > 0 {
		parts = append(parts, "scope "+quoteList(scopes))
	}
	if len(groups) > 0 {
		parts = append(parts, "group "+quoteList(groups))
	}
	return strings.Join(parts, " or ")
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "one of " + strings.Join(q, ", ")
}

func appendNew(dst []string, src ...string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

func (p *Policy) endpointAllowed(path string) bool {
	if !cleanPath(path) {
		return false
	}
	if p.exact[path] {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(path, pre) && len(path) > len(pre) {
			return true
		}
	}
	return false
}

// cleanPath refuses paths an upstream might normalise differently from a string match.
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/..") ||
		strings.HasSuffix(p, "/.") || strings.ContainsAny(p, "%\\;") {
		return false
	}
	return true
}

func looksLikeObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

// safePath and safeModel bound what a client-chosen string can put into a message or a log line.
func safePath(p string) string { return truncate(p, 128) }

func safeModel(m string) string { return truncate(m, glob.MaxLen) }

func safeMethod(m string) string { return truncate(m, 16) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// EstimateInputTokens is the reservation for a request's input: about four bytes of body per token,
// rounded up. Real usage replaces it when the response arrives.
func EstimateInputTokens(body []byte) int64 { return int64(len(body)+3) / 4 }
