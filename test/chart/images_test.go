//go:build integration

package chart

import (
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/internal/test/chartenv"
)

// TestImageDigests: image.digest and sidecar.image.digest pin the manager, every injected sidecar
// (--sidecar-image) and the gateway by digest (docs/images.md); without them the images are
// <repository>:<tag>.
func TestImageDigests(t *testing.T) {
	const (
		managerDigest = "sha256:8b4e7cadd8239357c49ec9de6711e254aff6d94f79b10831710947ec86309122"
		sidecarDigest = "sha256:32878121b944a13ae2e01944c66830573509bbc46c457d7d83f336c88c06a99c"
	)
	h := helmCLI(t)
	for _, tc := range []struct {
		name                  string
		set                   []string
		wantManager, wantSide string
	}{
		{name: "tags", set: []string{"image.tag=v9", "sidecar.image.tag=v8"},
			wantManager: "ghcr.io/claude-guard/manager:v9", wantSide: "ghcr.io/claude-guard/sidecar:v8"},
		{name: "digests", set: []string{"image.repository=registry.example.com/cg/manager", "image.digest=" + managerDigest,
			"sidecar.image.repository=registry.example.com/cg/sidecar", "sidecar.image.digest=" + sidecarDigest},
			wantManager: "registry.example.com/cg/manager@" + managerDigest, wantSide: "registry.example.com/cg/sidecar@" + sidecarDigest},
		{name: "a digest wins over a tag", set: []string{"image.tag=v9", "image.digest=" + managerDigest, "sidecar.image.tag=v8"},
			wantManager: "ghcr.io/claude-guard/manager@" + managerDigest, wantSide: "ghcr.io/claude-guard/sidecar:v8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := template(t, h, gateway(tc.set...)...)
			d, err := chartenv.ManagerDeployment([]byte(out))
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Spec.Template.Spec.Containers[0].Image; got != tc.wantManager {
				t.Errorf("manager image %q, want %q", got, tc.wantManager)
			}
			margs, err := chartenv.ManagerArgs(d)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := chartenv.Flag(margs, "sidecar-image"); got != tc.wantSide {
				t.Errorf("--sidecar-image=%q, want %q", got, tc.wantSide)
			}
			gw := gatewayObjects(t, []byte(out))
			if gw.deployment == nil {
				t.Fatal("no gateway Deployment")
			}
			if got := gw.deployment.Spec.Template.Spec.Containers[0].Image; got != tc.wantSide {
				t.Errorf("gateway image %q, want %q", got, tc.wantSide)
			}
			if strings.Contains(out, ":v9@") || strings.Contains(out, ":v8@") {
				t.Error("a tag is rendered next to a digest")
			}
		})
	}
}
