package imagebuild

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Annotations of the index's entry in an image layout's index.json: the tag (OCI), and the full name
// containerd's importer (`ctr images import`) names the image by.
const (
	AnnotationRefName       = "org.opencontainers.image.ref.name"
	AnnotationContainerName = "io.containerd.image.name"
)

// WriteOCIArchive writes idx as an OCI image layout, tarred, to path: index.json lists idx annotated
// with ref's tag and full name, so `ctr -n k8s.io images import path` creates the image ref (a
// Docker Hub ref is named as containerd and the kubelet name it, docker.io/library/...). The tar's
// entries are sorted, owned by 0:0 and dated 1970, so the file is as reproducible as idx.
func WriteOCIArchive(path, ref string, idx v1.ImageIndex) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "imagebuild-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		AnnotationRefName:       tag.TagStr(),
		AnnotationContainerName: ContainerdName(tag),
	})); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := writeTar(tmp, dir); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// ContainerdName is the name containerd (and the kubelet) give tag: Docker Hub's registry is
// docker.io, not index.docker.io.
func ContainerdName(tag name.Tag) string {
	reg := tag.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

// writeTar tars the tree under dir into file with normalized headers (fs.WalkDir visits names in
// lexical order).
func writeTar(file, dir string) (err error) {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	fsys := os.DirFS(dir)
	if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		h := &tar.Header{Name: p, Mode: 0o644, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		switch {
		case d.IsDir():
			h.Name, h.Mode, h.Typeflag = p+"/", 0o755, tar.TypeDir
			return tw.WriteHeader(h)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Size = info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		r, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(tw, r)
		return err
	}); err != nil {
		return err
	}
	return tw.Close()
}

// Push pushes idx (its images and blobs first) to ref, with the credentials of the Docker config
// (~/.docker/config.json, $DOCKER_CONFIG, credential helpers: authn.DefaultKeychain).
func Push(ctx context.Context, ref string, idx v1.ImageIndex) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
}
