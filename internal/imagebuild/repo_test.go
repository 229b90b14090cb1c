package imagebuild

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/claude-guard/claude-guard/internal/wellknown"
)

func TestGoEnv(t *testing.T) {
	for _, tc := range []struct {
		platform v1.Platform
		want     []string
		wantErr  string
	}{
		{platform: amd64, want: []string{"GOARCH=amd64", "GOAMD64=v1"}},
		{platform: v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, want: []string{"GOAMD64=v3"}},
		{platform: arm64, want: []string{"GOARCH=arm64", "GOARM64=v8.0"}},
		{platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8.2"}, want: []string{"GOARM64=v8.2"}},
		{platform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, want: []string{"GOARCH=arm", "GOARM=6"}},
		{platform: v1.Platform{OS: "linux", Architecture: "arm"}, want: []string{"GOARM=7"}},
		{platform: v1.Platform{OS: "linux", Architecture: "riscv64"}, want: []string{"GOARCH=riscv64"}},
		{platform: v1.Platform{OS: "linux", Architecture: "riscv64", Variant: "rva22u64"}, wantErr: "variants are for"},
		{platform: v1.Platform{OS: "darwin", Architecture: "arm64"}, wantErr: "want linux"},
	} {
		t.Run(tc.platform.String(), func(t *testing.T) {
			env, err := goEnv(tc.platform)
			if errorCase(t, err, tc.wantErr) {
				return
			}
			for _, w := range append([]string{"CGO_ENABLED=0", "GOOS=linux", "GOFLAGS="}, tc.want...) {
				if !slices.Contains(env, w) {
					t.Errorf("env %v lacks %s", env, w)
				}
			}
		})
	}
}

func TestBuildRepoImagesRefusesUnknownImages(t *testing.T) {
	_, err := BuildRepoImages(context.Background(), Options{Images: []string{"sidecar", "gateway"}, Created: created})
	if err == nil || !strings.Contains(err.Error(), `unknown image "gateway"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestBuildRepoImages builds the sidecar image of the working tree for the host's architecture twice:
// the same digest both times, a tarball and digests.txt, labels from git and the chart.
func TestBuildRepoImages(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the sidecar")
	}
	host := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	var first Result
	for i := range 2 {
		out := t.TempDir()
		results, err := BuildRepoImages(t.Context(), Options{
			Out: out, Registry: "registry.example.com/cg/", Images: []string{"sidecar"}, Platforms: []v1.Platform{host},
			Log: testWriter{t},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(results) != 1 {
			t.Fatalf("results %+v", results)
		}
		r := results[0]
		if i == 1 {
			if r.Digest != first.Digest {
				t.Fatalf("second build %s, first %s", r.Digest, first.Digest)
			}
			return
		}
		first = r
		if !strings.HasPrefix(r.Ref, "registry.example.com/cg/sidecar:v") || r.Path != filepath.Join(out, "sidecar.tar") {
			t.Errorf("result %+v", r)
		}
		if _, err := os.Stat(r.Path); err != nil {
			t.Error(err)
		}
		digests, err := os.ReadFile(filepath.Join(out, "digests.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(digests), r.Ref+"@"+r.Digest.String()+"\n"; got != want {
			t.Errorf("digests.txt = %q, want %q", got, want)
		}
		im, err := r.Index.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].Platform.String() != host.String() {
			t.Fatalf("index %+v", im)
		}
		img, err := r.Index.Image(im.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		l := cf.Config.Labels
		if len(strings.TrimSuffix(l[LabelRevision], "-dirty")) != 40 || l[LabelSource] != "https://github.com/claude-guard/claude-guard" ||
			l[LabelTitle] != "claude-guard sidecar" || l[LabelVersion] != strings.TrimPrefix(r.Ref, "registry.example.com/cg/sidecar:") {
			t.Errorf("labels %v", l)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{wellknown.SidecarBinary}) {
			t.Errorf("entrypoint %v", cf.Config.Entrypoint)
		}
		if cf.Created.Before(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("created %v: not HEAD's commit time", cf.Created)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
