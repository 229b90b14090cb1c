package managerapp

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/claude-guard/claude-guard/internal/inject"
)

// TestParseThreadsFlagsThrough checks that the flags the Helm chart sets reach the injection and
// effective-policy configuration they are meant for.
func TestParseThreadsFlagsThrough(t *testing.T) {
	o := NewOptions()
	err := o.Parse([]string{
		"--operator-namespace=platform",
		"--sidecar-image=registry.internal/sidecar:v2",
		"--sidecar-image-pull-policy=Always",
		`--sidecar-resources={"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"memory":"256Mi"}}`,
		"--sidecar-port=18787",
		"--vault-auth-mounts=kubernetes=kubernetes-prod,cert=spiffe",
		"--vault-jwt-audiences=vault-jwt, spire-vault",
		"--vault-audience=vault-k8s",
		"--no-tenant=Allow",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ic := o.Inject()
	want := inject.DefaultConfig()
	want.Image, want.ImagePullPolicy, want.Port, want.VaultAudience = "registry.internal/sidecar:v2", corev1.PullAlways, 18787, "vault-k8s"
	want.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	if !reflect.DeepEqual(ic, want) {
		t.Errorf("inject config:\n got %+v\nwant %+v", ic, want)
	}
	eff, err := o.Effective()
	if err != nil {
		t.Fatal(err)
	}
	if got := eff.VaultAuthMounts; !reflect.DeepEqual(got, map[string]string{"kubernetes": "kubernetes-prod", "cert": "spiffe"}) {
		t.Errorf("vault auth mounts = %v", got)
	}
	if got := eff.VaultAudiences; !reflect.DeepEqual(got, []string{"vault-jwt", "spire-vault", "vault-k8s"}) {
		t.Errorf("vault audiences = %v, want the jwt ones and the kubernetes one", got)
	}
	if eff.NoTenant != "Allow" {
		t.Errorf("no-tenant = %q", eff.NoTenant)
	}
}

// TestDefaultsMatchInjectDefaults: a manager started without flags injects exactly inject.DefaultConfig.
func TestDefaultsMatchInjectDefaults(t *testing.T) {
	o := NewOptions()
	if err := o.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if got, want := o.Inject(), inject.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("defaults differ:\n got %+v\nwant %+v", got, want)
	}
}

func TestInvalidOptions(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // in the error of Parse or Validate
	}{
		{"unknown flag", []string{"--sidecar-ports=1"}, "flag provided but not defined: -sidecar-ports"},
		{"resources not JSON", []string{"--sidecar-resources=cpu=1"}, "invalid JSON"},
		{"resources with a typo", []string{`--sidecar-resources={"request":{}}`}, `unknown field "request"`},
		{"port not a number", []string{"--sidecar-port=http"}, `"http" is not a 32-bit integer`},
		{"port out of range", []string{"--sidecar-port=70000"}, "sidecar port must be between 1 and 65535, got 70000"},
		{"port is the metrics port", []string{"--sidecar-port=9787"}, "sidecar port 9787 is the sidecar's metrics port"},
		{"pull policy", []string{"--sidecar-image-pull-policy=Sometimes"}, `--sidecar-image-pull-policy must be Always, IfNotPresent or Never, got "Sometimes"`},
		{"auth mount without =", []string{"--vault-auth-mounts=kubernetes"}, `"kubernetes" is not key=value`},
		{"auth mount twice", []string{"--vault-auth-mounts=jwt=a,jwt=b"}, `"jwt" is given twice`},
		{"auth mount of an unknown method", []string{"--vault-auth-mounts=approle=x"}, `unknown auth method "approle"`},
		{"auth mount with a slash", []string{"--vault-auth-mounts=jwt=/jwt"}, "the mount of jwt must be a path without leading or trailing slash"},
		{"no-tenant", []string{"--no-tenant=Maybe"}, `--no-tenant must be Deny or Allow, got "Maybe"`},
		{"upstream", []string{"--upstream=api.anthropic.com"}, `--upstream must be an absolute URL, got "api.anthropic.com"`},
		{"positional", []string{"--leader-elect", "extra"}, `unexpected positional arguments: ["extra"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := NewOptions()
			err := o.Parse(c.args)
			if err == nil {
				err = o.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}
