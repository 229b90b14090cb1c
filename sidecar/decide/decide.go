// Package decide is the sidecar's pure decision pipeline: given the compiled policy and one request
// (method, path, body), it says whether the request may go upstream, which rule refused it, and which
// rewrites (model alias, max_tokens clamp) to apply. It does no I/O; limits, which need shared state, are
// checked by the proxy after a request passes here.
package decide

import (
	"fmt"
	"net/http"
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

// Denial is why a request is refused, ready to be written as an Anthropic-shaped error.
type Denial struct {
	Rule    string
	Status  int
	Type    string
	Message string
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
}

// Decision is the outcome for one request.
type Decision struct {
	// Denial is the first rule that refused the request; nil when it may go upstream. In shadow mode
	// it is set but Enforced is false.
	Denial *Denial
	// Enforced is true when Denial must be returned to the client (not in shadow mode).
	Enforced bool
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
}

// Blocked reports whether the request must not be forwarded.
func (d *Decision) Blocked() bool { return d.Denial != nil && d.Enforced }

// modelPathPrefix starts the path of a call that names a model in its path (GET /v1/models/{id}).
const modelPathPrefix = policyconfig.PathModels + "/"

// hasModelBody reports whether path is one whose JSON body must carry a model the policy restricts.
func hasModelBody(path string) bool {
	return path == policyconfig.PathMessages || path == policyconfig.PathCountTokens
}

// Decide runs every rule in order and returns the first denial (or none) and the rewritten body. It
// never fails: a request it cannot read is denied.
func (p *Policy) Decide(r Request) Decision {
	d := Decision{Body: r.Body}
	refuse := func(dn *Denial) Decision {
		d.Denial = dn
		d.Enforced = !p.Config.ShadowMode
		return d
	}
	deny := func(rule string, status int, typ, format string, args ...any) Decision {
		return refuse(&Denial{Rule: rule, Status: status, Type: typ, Message: fmt.Sprintf(format, args...)})
	}
	c := p.Config
	if c.Deny != nil {
		// A deny-all config fails closed even in shadow mode: it means the policy itself is not admitted.
		d = deny(RuleDeny, http.StatusForbidden, TypePermission, "claude-guard: all requests are denied by policy (rule deny): %s", c.Deny.Reason)
		d.Enforced = true
		return d
	}
	if !p.endpointAllowed(r.Path) {
		return deny(RuleEndpoints, http.StatusForbidden, TypePermission,
			"claude-guard: endpoint %s %s is not in the policy's endpoint allow-list (rule endpoints)", r.Method, safePath(r.Path))
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
		d.Enforced = true
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
	if f.HasMaxTokens {
		for _, mt := range c.Models.MaxTokens {
			if !glob.Match(mt.Model, d.Model) {
				continue
			}
			if f.MaxTokens > mt.Limit {
				if mt.Action == policyconfig.ActionClamp {
					if !c.ShadowMode {
						d.ClampedFrom = f.MaxTokens
						d.Body = bodyscan.SetMaxTokens(d.Body, &d.Fields, mt.Limit)
					}
				} else {
					return deny(RuleMaxTokens, http.StatusBadRequest, TypeInvalidRequest,
						"claude-guard: max_tokens %d exceeds the policy's ceiling of %d for model %q (rule models.maxTokens %q)", f.MaxTokens, mt.Limit, safeModel(d.Model), mt.Model)
				}
			}
			break
		}
	}
	if f.Stream && c.DenyStreaming {
		return deny(RuleStreaming, http.StatusForbidden, TypePermission, "claude-guard: streaming is not allowed by policy (rule denyStreaming)")
	}
	return d
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

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// EstimateInputTokens is the reservation for a request's input: about four bytes of body per token,
// rounded up. Real usage replaces it when the response arrives.
func EstimateInputTokens(body []byte) int64 { return int64(len(body)+3) / 4 }
