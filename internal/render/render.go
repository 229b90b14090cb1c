// Package render produces the one document a policy's sidecars obey: the policy narrowed by its
// tenant (internal/effective), or the deny-all config when it is not admitted, marshalled and hashed.
//
// The policy controller writes the result of Policy into the policy's ConfigMap and its hash into the
// policy's status; the injection webhook mounts that ConfigMap only when its content has that hash, and
// decides the sidecar's mounts from it (inject.PlanFor). The hash is the one the policy's status, the
// sidecar's audit records and its claude_guard_config_info metric report.
package render

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// Result is a policy's rendered config.
type Result struct {
	Config *policyconfig.Config
	// Violations are why the policy is not admitted; Config is then the deny-all config.
	Violations []effective.Violation
	// Warnings are what an admitted policy asks for that does not take effect as written.
	Warnings []effective.Violation
	// Tenant is the ClaudeTenant that applied, "" when none did.
	Tenant string
	// Data is Config as the ConfigMap carries it; Hash identifies it.
	Data []byte
	Hash string
}

// Policy renders p with the tenant that selects its namespace, read through c: the document the
// controller writes into the policy's ConfigMap, with its bytes, hash and warnings.
func Policy(ctx context.Context, c client.Reader, p *v1alpha1.ClaudeAccessPolicy, o effective.Options) (Result, error) {
	ten, err := Of(ctx, c, p.Namespace)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if ten.Tenant != nil {
		res.Tenant = ten.Tenant.Name
	}
	res.Config, res.Violations = effective.Compute(effective.Input{Policy: p, Tenant: ten.Tenant, ConflictingTenants: ten.Conflicting}, o)
	if _, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector); err != nil {
		// Found here, so the policy renders deny-all and its Ready condition is written once.
		res.Violations = append([]effective.Violation{{Reason: v1alpha1.ReasonInvalidSelector, Message: "spec.podSelector is invalid: " + err.Error()}}, res.Violations...)
	}
	if len(res.Violations) > 0 {
		// Fail closed: running pods get a deny-all config rather than keep rules no longer admitted.
		res.Config = effective.Deny(p, res.Tenant, res.Violations, o)
	} else {
		res.Warnings = effective.Warnings(p, res.Config)
	}
	if res.Data, err = policyconfig.Marshal(res.Config); err != nil {
		return Result{}, fmt.Errorf("failed to marshal the rendered config of %s/%s: %w", p.Namespace, p.Name, err)
	}
	res.Hash = policyconfig.Hash(res.Data)
	return res, nil
}
