//go:build integration

package controllers_test

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
)

// newPolicy builds a valid Vault-backed policy; options adjust it.
func newPolicy(ns, name string, opts ...func(*v1alpha1.ClaudeAccessPolicy)) *v1alpha1.ClaudeAccessPolicy {
	p := &v1alpha1.ClaudeAccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ClaudeAccessPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat"}},
			Credentials: v1alpha1.CredentialSource{Vault: &v1alpha1.VaultCredentials{AuthMethod: v1alpha1.VaultAuthCert, Role: "team", Path: "anthropic"}},
			Models:      v1alpha1.ModelPolicy{Allow: []v1alpha1.ModelPattern{"claude-haiku-*"}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withModels(ms ...v1alpha1.ModelPattern) func(*v1alpha1.ClaudeAccessPolicy) {
	return func(p *v1alpha1.ClaudeAccessPolicy) { p.Spec.Models.Allow = ms }
}

func withSelector(labels map[string]string) func(*v1alpha1.ClaudeAccessPolicy) {
	return func(p *v1alpha1.ClaudeAccessPolicy) { p.Spec.PodSelector = metav1.LabelSelector{MatchLabels: labels} }
}

// newTenant builds a tenant selecting namespaces labelled tenant=<name>.
func newTenant(name string, opts ...func(*v1alpha1.ClaudeTenant)) *v1alpha1.ClaudeTenant {
	t := &v1alpha1.ClaudeTenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClaudeTenantSpec{
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"tenant": name}},
			Models:            v1alpha1.TenantModels{Allow: []v1alpha1.ModelPattern{"claude-haiku-*", "claude-sonnet-*"}, MaxTokens: ptr.To[int64](8192)},
			Credentials: v1alpha1.TenantCredentials{Vault: &v1alpha1.TenantVault{
				PathPrefix: "tenants/" + name, Roles: []string{"team"},
			}},
		},
	}
	for _, o := range opts {
		o(t)
	}
	return t
}
