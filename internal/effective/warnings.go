package effective

import (
	"fmt"
	"strings"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/glob"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// identity reports a credential that needs a SPIFFE identity (Vault cert or jwt auth, workload identity
// federation) in a namespace that gets none: every sidecar would exit at start.
func identity(c *policyconfig.Config, p *v1alpha1.ClaudeAccessPolicy, t *v1alpha1.ClaudeTenant) []Violation {
	if c.Identity.TrustDomain != "" {
		return nil
	}
	field := ""
	switch cr := &p.Spec.Credentials; {
	case cr.Vault != nil && (cr.Vault.AuthMethod == v1alpha1.VaultAuthCert || cr.Vault.AuthMethod == v1alpha1.VaultAuthJWT):
		field = fmt.Sprintf("spec.credentials.vault.authMethod %s", cr.Vault.AuthMethod)
	case cr.WorkloadIdentityFederation != nil:
		field = "spec.credentials.workloadIdentityFederation"
	default:
		return nil
	}
	who := "the operator sets no default SPIFFE trust domain (chart value spiffe.trustDomain)"
	if t != nil {
		who = fmt.Sprintf("ClaudeTenant %s sets no spec.spiffe.trustDomain and the operator no default (chart value spiffe.trustDomain)", t.Name)
	}
	return []Violation{{v1alpha1.ReasonSPIFFERequired, fmt.Sprintf(
		"%s needs a SPIFFE identity, but %s, so every sidecar would exit at start; ask the platform team for a trust domain, or use authMethod kubernetes or a secretRef",
		field, who)}}
}

// Warnings are what an admitted policy asks for that does not take effect as written: a setting the
// operator had to downgrade, and rules no call can reach. They do not keep the policy from being
// admitted; the controller reports them in the Degraded condition. c is the policy's rendered config.
func Warnings(p *v1alpha1.ClaudeAccessPolicy, c *policyconfig.Config) []Violation {
	var ws []Violation
	warn := func(reason, format string, args ...any) {
		ws = append(ws, Violation{reason, fmt.Sprintf(format, args...)})
	}
	s := &p.Spec
	if s.Limits != nil && s.Limits.Backend == v1alpha1.LimitBackendRedis && c.Limits.Backend == policyconfig.BackendLocal {
		replay := ""
		if s.EndUser != nil && s.EndUser.ReplayProtection {
			replay = ", and replay protection remembers tokens per pod"
		}
		warn(v1alpha1.ReasonLimitsDowngraded, "spec.limits.backend is Redis, but the operator has no Redis (chart value redis.url), so each pod counts limits and budgets on its own (N pods allow N times a limit)%s; ask the platform team for Redis, or set backend Local to accept per-pod counting", replay)
	}
	allow, deny := c.Models.Allow, c.Models.Deny
	if len(allow) > 0 && allCovered(deny, allow) {
		warn(v1alpha1.ReasonRuleHasNoEffect, "spec.models.deny covers every pattern of the allowed models (%s): every call that names a model is refused", strings.Join(allow, ", "))
	}
	for i, a := range s.Models.Aliases {
		if target := string(a.Target); !glob.AnyMatch(allow, target) || glob.AnyMatch(deny, target) {
			warn(v1alpha1.ReasonRuleHasNoEffect, "spec.models.aliases[%d] %s -> %s: the target is not an allowed model (%s), so calls naming %s are refused",
				i, a.Name, target, strings.Join(allow, ", "), a.Name)
		}
	}
	if e := s.EndUser; e != nil {
		for i, r := range e.Rules {
			for j, m := range r.Models {
				if !reachable(string(m), allow, deny) {
					warn(v1alpha1.ReasonRuleHasNoEffect, "spec.endUser.rules[%d].models[%d] %q matches no allowed model (%s): the rule grants nothing", i, j, m, strings.Join(allow, ", "))
				}
			}
		}
	}
	return ws
}

// reachable reports whether some model matching pattern m is allowed and not denied outright.
func reachable(m string, allow, deny []string) bool {
	if glob.AnyCovers(deny, m) {
		return false
	}
	for _, a := range allow {
		if glob.Overlaps(a, m) {
			return true
		}
	}
	return false
}

func allCovered(wides, narrows []string) bool {
	for _, n := range narrows {
		if !glob.AnyCovers(wides, n) {
			return false
		}
	}
	return true
}
