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
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/pricing"
	"github.com/claude-guard/claude-guard/internal/revocation"
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
	// RenderAgainAt is when the config changes by itself (a revocation expires); zero when never.
	RenderAgainAt time.Time
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
	table, err := PriceTable(ctx, c)
	if err != nil {
		return Result{}, err
	}
	in := effective.Input{Policy: p, Tenant: ten.Tenant, ConflictingTenants: ten.Conflicting, Prices: pricing.Resolve(table)}
	res.Config, res.Violations = effective.Compute(in, o)
	if _, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector); err != nil {
		// Found here, so the policy renders deny-all and its Ready condition is written once.
		res.Violations = append([]effective.Violation{{Reason: v1alpha1.ReasonInvalidSelector, Message: "spec.podSelector is invalid: " + err.Error()}}, res.Violations...)
	}
	if len(res.Violations) > 0 {
		// Fail closed: running pods get a deny-all config rather than keep rules no longer admitted.
		res.Config = effective.Deny(p, res.Tenant, res.Violations, o)
	} else {
		res.Warnings = effective.Warnings(p, res.Config)
		if res.RenderAgainAt, err = revoked(ctx, c, res.Config); err != nil {
			return Result{}, err
		}
	}
	if res.Data, err = policyconfig.Marshal(res.Config); err != nil {
		return Result{}, fmt.Errorf("failed to marshal the rendered config of %s/%s: %w", p.Namespace, p.Name, err)
	}
	res.Hash = policyconfig.Hash(res.Data)
	return res, nil
}

// PriceTable returns the cluster's ClaudePriceTable, nil when there is none.
func PriceTable(ctx context.Context, c client.Reader) (*v1alpha1.ClaudePriceTable, error) {
	t := &v1alpha1.ClaudePriceTable{}
	err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.PriceTableName}, t)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("failed to get ClaudePriceTable %s: %w", v1alpha1.PriceTableName, err)
	}
	return t, nil
}

// revoked renders the namespace's revocations of tokens of cfg's issuers into cfg (Config.Revoked), and
// returns when that list changes by itself (the next expiry).
func revoked(ctx context.Context, c client.Reader, cfg *policyconfig.Config) (time.Time, error) {
	e := cfg.EndUser
	if e == nil || e.Mode == policyconfig.EndUserDisabled || len(e.Issuers) == 0 {
		return time.Time{}, nil
	}
	var list v1alpha1.ClaudeRevocationList
	if err := c.List(ctx, &list, client.InNamespace(cfg.Policy.Namespace)); err != nil {
		return time.Time{}, fmt.Errorf("failed to list the ClaudeRevocations of namespace %s: %w", cfg.Policy.Namespace, err)
	}
	issuers := make([]string, 0, len(e.Issuers))
	for _, is := range e.Issuers {
		issuers = append(issuers, is.URL)
	}
	set := revocation.Of(list.Items, time.Now())
	cfg.Revoked = set.ForIssuers(issuers)
	return set.Next, nil
}
