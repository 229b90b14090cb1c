package imagebuild

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var meta = Metadata{
	Created:  created,
	Source:   "https://github.com/claude-guard/claude-guard",
	Revision: "0123456789abcdef0123456789abcdef01234567",
	Version:  "v0.1.0",
	Title:    "claude-guard sidecar",
}

func spec(p v1.Platform, bin string) Spec {
	return Spec{Binary: []byte(bin), Path: "/usr/local/bin/sidecar", Platform: p, Metadata: meta}
}

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

func TestImage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		platform v1.Platform
		wantArch string
		wantVar  string
		wantErr  string
	}{
		{name: "amd64", platform: amd64, wantArch: "amd64"},
		{name: "arm64", platform: arm64, wantArch: "arm64"},
		{name: "arm v7", platform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, wantArch: "arm", wantVar: "v7"},
		{name: "OS defaults to linux", platform: v1.Platform{Architecture: "amd64"}, wantArch: "amd64"},
		{name: "windows", platform: v1.Platform{OS: "windows", Architecture: "amd64"}, wantErr: "want linux"},
		{name: "no architecture", platform: v1.Platform{OS: "linux"}, wantErr: "want linux"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Image(spec(tc.platform, "binary"))
			if errorCase(t, err, tc.wantErr) {
				return
			}
			if err := validate.Image(img); err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != tc.wantArch || cf.Variant != tc.wantVar {
				t.Errorf("platform %s/%s/%s, want linux/%s/%s", cf.OS, cf.Architecture, cf.Variant, tc.wantArch, tc.wantVar)
			}
			c := cf.Config
			if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/sidecar"}) || c.Cmd != nil ||
				!slices.Equal(c.Env, []string{"PATH=/usr/local/bin"}) || c.WorkingDir != "/" {
				t.Errorf("config %+v", c)
			}
			if !cf.Created.Equal(created) {
				t.Errorf("created %v, want %v", cf.Created, created)
			}
			wantLabels := map[string]string{
				LabelSource:   meta.Source,
				LabelRevision: meta.Revision,
				LabelVersion:  meta.Version,
				LabelTitle:    meta.Title,
				LabelCreated:  "2026-07-01T12:30:45Z",
			}
			if !maps.Equal(c.Labels, wantLabels) {
				t.Errorf("labels %v, want %v", c.Labels, wantLabels)
			}
			if len(cf.History) != 1 || !cf.History[0].Created.Equal(created) {
				t.Errorf("history %+v", cf.History)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON ||
				len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
				t.Errorf("manifest %+v: want an OCI manifest with one OCI layer", m)
			}
		})
	}
}

func TestLabelsLeaveOutEmptyFields(t *testing.T) {
	got := Metadata{Created: created, Version: "v1"}.Labels()
	want := map[string]string{LabelVersion: "v1", LabelCreated: "2026-07-01T12:30:45Z"}
	if !maps.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
}

func TestIndex(t *testing.T) {
	a, err := Image(spec(amd64, "amd64 binary"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Image(spec(arm64, "arm64 binary"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := Index(meta, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %+v", im)
	}
	for i, want := range []v1.Platform{amd64, arm64} {
		d := im.Manifests[i]
		if d.Platform == nil || d.Platform.String() != want.String() || d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("manifest %d: %+v, want an OCI manifest for %s", i, d, want)
		}
	}
	if !maps.Equal(im.Annotations, meta.Labels()) {
		t.Errorf("annotations %v, want %v", im.Annotations, meta.Labels())
	}

	for _, tc := range []struct {
		name    string
		images  []v1.Image
		wantErr string
	}{
		{name: "no images", wantErr: "at least one"},
		{name: "a platform twice", images: []v1.Image{a, b, a}, wantErr: "two images for platform linux/amd64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Index(meta, tc.images...); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// indexDigest builds the two-platform index of one binary (the same bytes for both platforms: the
// digest only depends on them).
func indexDigest(t *testing.T, s Spec) v1.Hash {
	t.Helper()
	var images []v1.Image
	for _, p := range []v1.Platform{amd64, arm64} {
		s.Platform = p
		img, err := Image(s)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	idx, err := Index(s.Metadata, images...)
	if err != nil {
		t.Fatal(err)
	}
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestReproducible(t *testing.T) {
	base := spec(amd64, "the same binary")
	want := indexDigest(t, base)
	for _, tc := range []struct {
		name   string
		change func(*Spec)
		same   bool
	}{
		{name: "same inputs", change: func(*Spec) {}, same: true},
		{name: "same bytes, new slice", change: func(s *Spec) { s.Binary = []byte(string(s.Binary)) }, same: true},
		{name: "same instant, other zone and sub-second", change: func(s *Spec) {
			s.Created = created.In(time.FixedZone("CEST", 2*3600)).Add(999 * time.Millisecond)
		}, same: true},
		{name: "different binary", change: func(s *Spec) { s.Binary = []byte("another binary") }},
		{name: "different time", change: func(s *Spec) { s.Created = created.Add(time.Second) }},
		{name: "different path", change: func(s *Spec) { s.Path = "/usr/local/bin/manager" }},
		{name: "different revision", change: func(s *Spec) { s.Revision += "-dirty" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.change(&s)
			if got := indexDigest(t, s); (got == want) != tc.same {
				t.Errorf("digest %s, base %s: same = %v, want %v", got, want, got == want, tc.same)
			}
		})
	}
}
