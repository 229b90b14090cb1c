//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/effective"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// TestStatusTellsWhatWillNotWork: on an operator without a SPIFFE trust domain and without Redis, as the
// chart installs by default, a tenant admin reads in the policy's own status what will fail and what
// will not take effect: a Vault cert policy is not admitted (its sidecars would exit at start), a Redis
// policy is admitted but Degraded (it counts per pod), and dead rules are Degraded with each field named.
func TestStatusTellsWhatWillNotWork(t *testing.T) {
	ctx := context.Background()
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	stop, err := env.StartManager(testenv.ManagerOptions{Effective: effective.Options{
		NoTenant: effective.NoTenantDeny, VaultAddress: "https://vault.test:8200", Upstream: "https://api.anthropic.com"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop() }()
	c := env.Client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "status", Labels: map[string]string{"tenant": "status"}}}
	tn := newTenant("status", func(tn *v1alpha1.ClaudeTenant) {
		tn.Spec.Models.Allow = append(tn.Spec.Models.Allow, "claude-opus-*")
	})
	k8sAuth := func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Credentials.Vault.AuthMethod = v1alpha1.VaultAuthKubernetes
	}
	cert := newPolicy(ns.Name, "cert")
	redis := newPolicy(ns.Name, "redis", k8sAuth, func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Limits = &v1alpha1.LimitPolicy{Backend: v1alpha1.LimitBackendRedis}
	})
	dead := newPolicy(ns.Name, "dead", k8sAuth, withModels("claude-haiku-*"), func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Models.Aliases = []v1alpha1.ModelAlias{{Name: "best", Target: "claude-opus-4-1"}}
		p.Spec.EndUser = &v1alpha1.EndUserPolicy{Mode: v1alpha1.EndUserOptional,
			Issuers: []v1alpha1.OIDCIssuer{{URL: "https://issuer.example", Audiences: []string{"claude"}}},
			Rules:   []v1alpha1.ScopeRule{{Scopes: []string{"pro"}, Models: []v1alpha1.ModelPattern{"claude-opus-*"}}}}
	})
	denyAll := newPolicy(ns.Name, "deny-all", k8sAuth, withSelector(map[string]string{"app": "batch"}), func(p *v1alpha1.ClaudeAccessPolicy) {
		p.Spec.Models.Deny = []v1alpha1.ModelPattern{"claude-*"}
	})
	// A pod that opted out: the webhook never saw it, and the policy says so.
	optedOut := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "batch-0",
		Labels: map[string]string{"app": "batch", "claudeguard.io/inject": "false"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.test/batch:1"}}}}
	for _, o := range []client.Object{ns, tn, cert, redis, dead, denyAll, optedOut} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		policy, condition string
		status            metav1.ConditionStatus
		reason            string
		want              []string
	}{
		{"cert", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSPIFFERequired,
			[]string{"spec.credentials.vault.authMethod cert needs a SPIFFE identity", "ClaudeTenant status sets no spec.spiffe.trustDomain"}},
		{"redis", v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonLimitsDowngraded,
			[]string{"spec.limits.backend is Redis, but the operator has no Redis"}},
		{"redis", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAdmitted, nil},
		{"deny-all", v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonRuleHasNoEffect,
			[]string{"spec.models.deny covers every pattern of the allowed models (claude-haiku-*)"}},
		{"dead", v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonRuleHasNoEffect,
			[]string{"spec.models.aliases[0] best -> claude-opus-4-1", "spec.endUser.rules[0].models[0] \"claude-opus-*\" matches no allowed model"}},
	}
	for _, tc := range cases {
		wait.For(t, 15*time.Second, tc.policy+" "+tc.condition, func() error {
			p := &v1alpha1.ClaudeAccessPolicy{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: tc.policy}, p); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(p.Status.Conditions, tc.condition)
			if cond == nil || cond.Status != tc.status || cond.Reason != tc.reason {
				return fmt.Errorf("%s: %+v, want %s reason %s", tc.condition, cond, tc.status, tc.reason)
			}
			for _, w := range tc.want {
				if !strings.Contains(cond.Message, w) {
					return fmt.Errorf("%s message %q does not say %q", tc.condition, cond.Message, w)
				}
			}
			return nil
		})
	}
	wait.For(t, 15*time.Second, "the opted-out pod in the deny-all policy's counts", func() error {
		p := &v1alpha1.ClaudeAccessPolicy{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(denyAll), p); err != nil {
			return err
		}
		if pc := p.Status.Pods; pc == nil || pc.NotInjected != 1 || len(pc.NotInjectedReasons) != 1 ||
			pc.NotInjectedReasons[0].Reason != "the pod opted out with label claudeguard.io/inject=false" {
			return fmt.Errorf("pods = %+v", pc)
		}
		return nil
	})
}
