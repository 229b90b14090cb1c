package podrun

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"NS": "team-a", "SA": "chat"}
	cases := map[string]string{
		"ns/$(NS)/sa/$(SA)": "ns/team-a/sa/chat",
		"$(UNKNOWN)":        "$(UNKNOWN)", // the kubelet leaves unresolved references as written
		"$$(NS)":            "$(NS)",      // $$ escapes
		"cost: $5":          "cost: $5",
		"":                  "",
	}
	for in, want := range cases {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRewritePlacesMountsUnderRoot(t *testing.T) {
	r := &Runner{Root: "/tmp/cg1"}
	c := corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{MountPath: "/var/run/secrets/claude-guard"},
		{MountPath: "/var/run/secrets/claude-guard-vault"},
		{MountPath: "/etc/claude-guard"},
	}}
	cases := map[string]string{
		"--config=/etc/claude-guard/config.json":                       "--config=/tmp/cg1/etc/claude-guard/config.json",
		"--vault-token-file=/var/run/secrets/claude-guard-vault/token": "--vault-token-file=/tmp/cg1/var/run/secrets/claude-guard-vault/token",
		"--secret-dir=/var/run/secrets/claude-guard":                   "--secret-dir=/tmp/cg1/var/run/secrets/claude-guard",
		"--listen=127.0.0.1:8787":                                      "--listen=127.0.0.1:8787",
		"/tmp/cg1/etc/claude-guard/config.json":                        "/tmp/cg1/etc/claude-guard/config.json", // already placed
	}
	for in, want := range cases {
		if got := r.rewrite(c, in); got != want {
			t.Errorf("rewrite(%q) = %q, want %q", in, got, want)
		}
	}
}
