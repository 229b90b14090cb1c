// Package imagebuild builds claude-guard's container images without a container runtime: one static Go
// binary on an empty base, one layer, a multi-platform OCI index, written as an OCI image layout tarball
// (`ctr images import`) or pushed to a registry. `make images` (hack/images) drives it; BuildRepoImages is
// the same thing callable from tests.
//
// The images are reproducible: the layer is written here with archive/tar (sorted entries, owner 0:0,
// every mtime the given creation time) and everything above it (config, manifests, index, layout) by
// go-containerregistry, so the same binaries and time give the same digests.
package imagebuild

import (
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI label (and annotation) keys the images carry.
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelVersion  = "org.opencontainers.image.version"
	LabelTitle    = "org.opencontainers.image.title"
	LabelCreated  = "org.opencontainers.image.created"
)

// NonRoot is the uid and gid the images run as, named nonroot in /etc/passwd and /etc/group (the chart's
// runAsUser is the same).
const NonRoot = 65532

// Metadata describes what an image was built from. Created is also every file's mtime in the layer.
type Metadata struct {
	Created  time.Time
	Source   string // repository URL
	Revision string // commit, "-dirty" appended for an uncommitted tree
	Version  string
	Title    string
}

// Labels returns the OCI labels of m; empty fields are left out.
func (m Metadata) Labels() map[string]string {
	l := map[string]string{LabelCreated: m.created().Format(time.RFC3339)}
	for k, v := range map[string]string{LabelSource: m.Source, LabelRevision: m.Revision, LabelVersion: m.Version, LabelTitle: m.Title} {
		if v != "" {
			l[k] = v
		}
	}
	return l
}

// created is Created in UTC at whole seconds (what a tar header and a git commit time can hold).
func (m Metadata) created() time.Time { return m.Created.UTC().Truncate(time.Second) }

// Spec is one single-platform image: Binary (a static executable) at Path, which is also the entrypoint.
type Spec struct {
	Binary []byte
	Path   string
	// EntrypointArgs follow Path in the entrypoint (SPIRE's images run "spire-server run").
	EntrypointArgs []string
	Platform       v1.Platform // OS empty means linux
	Metadata
}

// Image builds the image of s: the layer described in layer.go, and a config that runs Path as
// 65532:65532 in "/" with PATH=/usr/local/bin.
func Image(s Spec) (v1.Image, error) {
	p := s.Platform
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.OS != "linux" || p.Architecture == "" {
		return nil, fmt.Errorf("platform %q: want linux/<arch>[/<variant>]", p.String())
	}
	layer, err := Layer(s.Path, s.Binary, s.created())
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: s.created()}
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", NonRoot, NonRoot),
			Entrypoint: append([]string{s.Path}, s.EntrypointArgs...),
			Env:        []string{"PATH=/usr/local/bin"},
			WorkingDir: "/",
			Labels:     s.Labels(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "imagebuild: " + s.Path + " on an empty base"},
	})
}

// Index returns the OCI index of images, in the given order, each under the platform of its config; the
// index is annotated with m's labels. Two images of one platform are an error.
func Index(m Metadata, images ...v1.Image) (v1.ImageIndex, error) {
	if len(images) == 0 {
		return nil, fmt.Errorf("an index needs at least one image")
	}
	seen := map[string]bool{}
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for _, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		p := cf.Platform()
		if p == nil || p.Architecture == "" {
			return nil, fmt.Errorf("image without a platform in its config")
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("two images for platform %s", p)
		}
		seen[p.String()] = true
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	annotated, ok := mutate.Annotations(idx, m.Labels()).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("annotating the index: unexpected type")
	}
	return annotated, nil
}
