package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claude-guard/claude-guard/internal/imagebuild"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// SPIRE's images, built here from the binaries hack/spire.sh makes (and the registrar from this
// repository), for the node's platform, with the entrypoints of the upstream images. config/spire names
// the upstream images; InstallSPIRE swaps in these through a kustomize overlay, so what runs is
// config/spire with other image names only.
var spireImages = []struct {
	upstream, name string
	entrypointArgs []string
}{
	{"ghcr.io/spiffe/spire-server", "spire-server", []string{"run"}},
	{"ghcr.io/spiffe/spire-agent", "spire-agent", []string{"run"}},
	{"ghcr.io/spiffe/spire-controller-manager", "spire-controller-manager", nil},
	{"ghcr.io/spiffe/spiffe-csi-driver", "spiffe-csi-driver", nil},
}

// registrarImage stands in for registry.k8s.io/sig-storage/csi-node-driver-registrar, which the Go
// module proxy does not serve (test/images/csiregistrar).
var registrarImage = imagebuild.RepoImage{Name: "csiregistrar", Package: "./test/images/csiregistrar", Path: "/usr/local/bin/csiregistrar"}

const registrarUpstream = "registry.k8s.io/sig-storage/csi-node-driver-registrar"

// BuildSPIREImages writes SPIRE's image tarballs into dir and returns their paths.
func BuildSPIREImages(ctx context.Context, dir string) ([]string, error) {
	bins, err := testservers.SPIREDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	meta := imagebuild.Metadata{Created: time.Unix(0, 0), Version: TestVersion}
	var out []string
	for _, si := range spireImages {
		bin, err := os.ReadFile(filepath.Join(bins, si.name))
		if err != nil {
			return nil, fmt.Errorf("reading %s from hack/spire.sh's output: %w", si.name, err)
		}
		m := meta
		m.Title = si.name
		img, err := imagebuild.Image(imagebuild.Spec{Binary: bin, Path: "/usr/local/bin/" + si.name, EntrypointArgs: si.entrypointArgs, Platform: p, Metadata: m})
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", si.name, err)
		}
		idx, err := imagebuild.Index(m, img)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, si.name+".tar")
		if err := imagebuild.WriteOCIArchive(path, TestRegistry+"/"+si.name+":"+TestVersion, idx); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, path)
	}
	res, err := imagebuild.BuildRepoImages(ctx, imagebuild.Options{Dir: testenv.RepoRoot(), Out: dir, Platforms: []v1.Platform{p},
		Catalog: []imagebuild.RepoImage{registrarImage}, Registry: TestRegistry, Version: TestVersion})
	if err != nil {
		return nil, fmt.Errorf("building the CSI registrar image: %w", err)
	}
	return append(out, res[0].Path), nil
}

// SPIRE is SPIRE as InstallSPIRE left it running.
type SPIRE struct {
	// TrustDomain and ClusterName are config/spire's.
	TrustDomain, ClusterName string
	// Bundle is the X.509 trust bundle (PEM) the server published in ConfigMap spire-system/spire-bundle.
	Bundle string
	// Installed is how long the install took, until every agent and CSI driver pod was ready.
	Installed time.Duration
}

// NodeIP is the node's (and API server's) address on the pod bridge (hack/cluster/env.sh): a server the
// test runs outside the node listens here for pods.
const NodeIP = "10.244.0.1"

// config/spire's settings.
const (
	SPIRETrustDomain = "claude-guard.test"
	SPIREClusterName = "claude-guard"
	SPIRENamespace   = "spire-system"
)

// InstallSPIRE installs the SPIRE Controller Manager's CRDs and config/spire as docs/install.md says
// (server, wait for the trust bundle, agents and CSI driver), with the images of BuildSPIREImages.
func (c *Cluster) InstallSPIRE(ctx context.Context) (SPIRE, error) {
	t0 := time.Now()
	s := SPIRE{TrustDomain: SPIRETrustDomain, ClusterName: SPIREClusterName}
	bins, err := testservers.SPIREDir()
	if err != nil {
		return s, err
	}
	if _, err := c.Run(ctx, "", "apply", "--server-side", "-f", filepath.Join(bins, "crds")); err != nil {
		return s, err
	}
	for _, part := range []string{"server", "agent"} {
		overlay, err := spireOverlay(part)
		if err != nil {
			return s, err
		}
		defer os.RemoveAll(overlay)
		if _, err := c.Run(ctx, "", "apply", "-k", overlay); err != nil {
			return s, err
		}
		if part == "server" {
			if s.Bundle, err = c.waitBundle(ctx, 2*time.Minute); err != nil {
				return s, err
			}
		}
	}
	for _, ds := range []string{"spire-agent", "spiffe-csi-driver"} {
		if err := c.WaitDaemonSet(ctx, SPIRENamespace, ds, 2*time.Minute); err != nil {
			return s, err
		}
	}
	s.Installed = time.Since(t0)
	return s, nil
}

// spireOverlay writes a kustomization that is config/spire/<part> with the test images.
func spireOverlay(part string) (string, error) {
	dir, err := os.MkdirTemp("", "cg-spire-overlay-")
	if err != nil {
		return "", err
	}
	// kustomize takes no absolute resource paths, but a relative one may leave the overlay's folder.
	base, err := filepath.Rel(dir, filepath.Join(testenv.RepoRoot(), "config", "spire", part))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\nimages:\n", base)
	for _, si := range spireImages {
		fmt.Fprintf(&b, "  - {name: %s, newName: %s/%s, newTag: %s}\n", si.upstream, TestRegistry, si.name, TestVersion)
	}
	fmt.Fprintf(&b, "  - {name: %s, newName: %s/%s, newTag: %s}\n", registrarUpstream, TestRegistry, registrarImage.Name, TestVersion)
	return dir, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644)
}

// waitBundle waits for the server's k8sbundle notifier to publish the trust bundle.
func (c *Cluster) waitBundle(ctx context.Context, timeout time.Duration) (string, error) {
	var cm corev1.ConfigMap
	err := wait.Until(ctx, timeout, func() error {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: SPIRENamespace, Name: "spire-bundle"}, &cm); err != nil {
			return err
		}
		if !strings.Contains(cm.Data["bundle.crt"], "BEGIN CERTIFICATE") {
			return fmt.Errorf("ConfigMap spire-bundle has no bundle.crt yet")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("the SPIRE server published no trust bundle: %w\n%s", err, c.podLogs(ctx, SPIRENamespace, "app.kubernetes.io/name=spire-server"))
	}
	return cm.Data["bundle.crt"], nil
}

// WaitDaemonSet waits until every pod of DaemonSet ns/name is updated and ready.
func (c *Cluster) WaitDaemonSet(ctx context.Context, ns, name string, timeout time.Duration) error {
	err := wait.Until(ctx, timeout, func() error {
		var d appsv1.DaemonSet
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.DesiredNumberScheduled == 0 ||
			st.UpdatedNumberScheduled != st.DesiredNumberScheduled || st.NumberReady != st.DesiredNumberScheduled {
			return fmt.Errorf("%d of %d pods updated, %d ready", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberReady)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("DaemonSet %s/%s not ready: %w\n%s", ns, name, err, c.podLogs(ctx, ns, "app.kubernetes.io/name="+name))
	}
	return nil
}

// podLogs returns the last log lines of the pods matching selector, for failure messages.
func (c *Cluster) podLogs(ctx context.Context, ns, selector string) string {
	out, _ := c.Run(ctx, "", "-n", ns, "logs", "-l", selector, "--all-containers", "--prefix", "--tail=30")
	desc, _ := c.Run(ctx, "", "-n", ns, "get", "pods", "-l", selector, "-o", "wide")
	return desc + out
}
