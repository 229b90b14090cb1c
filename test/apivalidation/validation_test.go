//go:build integration

// Package apivalidation proves every OpenAPI and CEL rule of the claude-guard CRDs against a real
// kube-apiserver: each case is a YAML document sent through the typed client, and the test asserts the
// API server's exact message for that field.
package apivalidation

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/api/v1alpha1"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// validPolicy is the smallest valid policy; cases change one field of baseSpec.
var validPolicy = policyWith(baseSpec)

type validationCase struct {
	name string
	// yaml is the object; NAME is replaced by a unique name.
	yaml string
	// want is the API server's message for the invalid field; empty means the object is valid.
	want string
}

func policyWith(spec string) string {
	return `
apiVersion: claudeguard.io/v1alpha1
kind: ClaudeAccessPolicy
metadata:
  name: NAME
  namespace: team-a
spec:
` + spec
}

const baseSpec = `
  podSelector: {}
  credentials:
    vault: {authMethod: cert, role: team-a, path: anthropic}
  models:
    allow: [claude-haiku-*]
`

func runCases(t *testing.T, newObj func() client.Object, cases []validationCase) {
	t.Helper()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj := newObj()
			doc := strings.ReplaceAll(c.yaml, "NAME", fmt.Sprintf("case-%d", i))
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("test YAML does not decode: %v", err)
			}
			// Sent as written, as kubectl sends it: the typed object would drop an empty list.
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatal(err)
			}
			err := env.Client.Create(context.Background(), u)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("valid object rejected: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("invalid object accepted; want error %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("wrong error\n got: %v\nwant: %s", err, c.want)
			}
		})
	}
}

func TestClaudeAccessPolicyValidation(t *testing.T) {
	runCases(t, func() client.Object { return &v1alpha1.ClaudeAccessPolicy{} }, policyCases)
}

func TestClaudeTenantValidation(t *testing.T) {
	runCases(t, func() client.Object { return &v1alpha1.ClaudeTenant{} }, tenantCases)
}

func TestClaudeRevocationValidation(t *testing.T) {
	runCases(t, func() client.Object { return &v1alpha1.ClaudeRevocation{} }, revocationCases)
}

// TestRevocationSpecIsImmutable: a revocation edited to name another token would quietly lift the
// first, so the API server refuses any change of its spec (lifting is deleting).
func TestRevocationSpecIsImmutable(t *testing.T) {
	ctx := context.Background()
	r := &v1alpha1.ClaudeRevocation{ObjectMeta: metav1.ObjectMeta{Name: "immutable", Namespace: "team-a"},
		Spec: v1alpha1.ClaudeRevocationSpec{Issuer: "https://login.example.com", Subject: "alice"}}
	if err := env.Client.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Spec.Subject = "bob"
	err := env.Client.Update(ctx, r)
	if want := "spec is immutable: delete this revocation to lift it, and create another"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("update of the subject: %v, want %q", err, want)
	}
}

// TestDefaults proves the API server applies the documented defaults.
func TestDefaults(t *testing.T) {
	p := &v1alpha1.ClaudeAccessPolicy{}
	if err := yaml.UnmarshalStrict([]byte(strings.ReplaceAll(validPolicy, "NAME", "defaults")), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Models.MaxTokens = []v1alpha1.ModelMaxTokens{{Model: "claude-haiku-*", Limit: 1000}}
	p.Spec.Limits = &v1alpha1.LimitPolicy{Rules: []v1alpha1.RateLimit{{Name: "rpm", Window: "Minute", Requests: new(int64)}}}
	*p.Spec.Limits.Rules[0].Requests = 10
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	v := p.Spec.Credentials.Vault
	if v.Mount != "secret" || v.Field != "api_key" {
		t.Errorf("vault defaults: mount=%q field=%q", v.Mount, v.Field)
	}
	if p.Spec.Models.MaxTokens[0].Action != v1alpha1.ActionReject {
		t.Errorf("maxTokens action default = %q", p.Spec.Models.MaxTokens[0].Action)
	}
	r := p.Spec.Limits.Rules[0]
	if r.Key != v1alpha1.KeyWorkload || r.TokenType != "Total" || p.Spec.Limits.Backend != "Local" || p.Spec.Limits.FailureMode != "FailClosed" {
		t.Errorf("limit defaults: %+v %+v", r, p.Spec.Limits)
	}
	if p.Spec.AllowStreaming == nil || !*p.Spec.AllowStreaming {
		t.Errorf("allowStreaming default = %v", p.Spec.AllowStreaming)
	}
}
