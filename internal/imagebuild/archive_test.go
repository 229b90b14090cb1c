package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func testIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	var images []v1.Image
	for _, p := range []v1.Platform{amd64, arm64} {
		img, err := Image(spec(p, p.Architecture+" binary"))
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	idx, err := Index(meta, images...)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// untar extracts file into a new directory, checking the entries' headers.
func untar(t *testing.T, file string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: owner %d:%d, mtime %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
	for _, want := range []string{"blobs/", "blobs/sha256/", "index.json", "oci-layout"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s in %v", want, names)
		}
	}
	return dir
}

func TestWriteOCIArchive(t *testing.T) {
	idx := testIndex(t)
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref, wantTag, wantName string
	}{
		{ref: "ghcr.io/claude-guard/sidecar:v0.1.0", wantTag: "v0.1.0", wantName: "ghcr.io/claude-guard/sidecar:v0.1.0"},
		{ref: "localhost:5000/cg/manager:dev", wantTag: "dev", wantName: "localhost:5000/cg/manager:dev"},
		// Docker Hub, as containerd and the kubelet spell it.
		{ref: "example/sidecar:v1", wantTag: "v1", wantName: "docker.io/example/sidecar:v1"},
		{ref: "sidecar:v1", wantTag: "v1", wantName: "docker.io/library/sidecar:v1"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "image.tar")
			if err := WriteOCIArchive(file, tc.ref, idx); err != nil {
				t.Fatal(err)
			}
			dir := untar(t, file)
			lp, err := layout.FromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			top, err := lp.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			im, err := top.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Manifests) != 1 {
				t.Fatalf("index.json lists %d manifests, want 1", len(im.Manifests))
			}
			d := im.Manifests[0]
			if d.Digest != want {
				t.Errorf("index.json lists %s, want %s", d.Digest, want)
			}
			if got := d.Annotations[AnnotationRefName]; got != tc.wantTag {
				t.Errorf("%s = %q, want %q", AnnotationRefName, got, tc.wantTag)
			}
			if got := d.Annotations[AnnotationContainerName]; got != tc.wantName {
				t.Errorf("%s = %q, want %q", AnnotationContainerName, got, tc.wantName)
			}
			inner, err := top.ImageIndex(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Index(inner); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("reproducible", func(t *testing.T) {
		dir := t.TempDir()
		var files [][]byte
		for _, f := range []string{"a.tar", "b.tar"} {
			p := filepath.Join(dir, f)
			if err := WriteOCIArchive(p, "ghcr.io/claude-guard/sidecar:v0.1.0", testIndex(t)); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, b)
		}
		if !bytes.Equal(files[0], files[1]) {
			t.Error("two archives of the same index differ")
		}
		if left, _ := fs.Glob(os.DirFS(dir), "*.tmp"); len(left) > 0 {
			t.Errorf("left behind %v", left)
		}
	})
	t.Run("bad reference", func(t *testing.T) {
		if err := WriteOCIArchive(filepath.Join(t.TempDir(), "x.tar"), "UPPER/case:v1", idx); err == nil {
			t.Fatal("no error for an invalid reference")
		}
	})
}

func TestContainerdName(t *testing.T) {
	for ref, want := range map[string]string{
		"ghcr.io/claude-guard/manager:v0.1.0": "ghcr.io/claude-guard/manager:v0.1.0",
		"index.docker.io/library/redis:7":     "docker.io/library/redis:7",
		"docker.io/cg/sidecar:v2":             "docker.io/cg/sidecar:v2",
		"sidecar":                             "docker.io/library/sidecar:latest",
	} {
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := ContainerdName(tag); got != want {
			t.Errorf("ContainerdName(%s) = %s, want %s", ref, got, want)
		}
	}
}

func TestPush(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials: anonymous
	idx := testIndex(t)
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref := u.Host + "/claude-guard/sidecar:v0.1.0"
	if err := Push(context.Background(), ref, idx); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(tag)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := got.Digest(); err != nil || d != want {
		t.Fatalf("registry has %s (%v), want %s", d, err, want)
	}
	if err := validate.Index(got); err != nil {
		t.Fatal(err)
	}
	if err := Push(context.Background(), "not a reference", idx); err == nil || !strings.Contains(err.Error(), "not a reference") {
		t.Errorf("err = %v for an invalid reference", err)
	}
}
