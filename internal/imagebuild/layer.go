package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The account files: root, and nonroot (65532) whom the images run as. No shell exists in the images.
var (
	passwd = fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/nonexistent:/sbin/nologin\n", NonRoot, NonRoot)
	group  = fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRoot)
)

// entry is one file or directory (name ends in "/") of the layer.
type entry struct {
	mode int64
	data []byte
}

// LayerTar returns the uncompressed tar of the images' only layer: the directories etc/, tmp/ (mode
// 1777) and those above binPath, etc/passwd and etc/group, and bin at binPath (mode 0755). Entries are
// sorted by name, owned by 0:0 and dated mtime, so the bytes depend on the arguments only.
func LayerTar(binPath string, bin []byte, mtime time.Time) ([]byte, error) {
	rel := strings.TrimPrefix(binPath, "/")
	if !path.IsAbs(binPath) || path.Clean(binPath) != binPath || rel == "" {
		return nil, fmt.Errorf("binary path %q: want a clean absolute file path", binPath)
	}
	if len(bin) == 0 {
		return nil, fmt.Errorf("binary for %s is empty", binPath)
	}
	files := map[string]entry{
		"etc/":       {mode: 0o755},
		"etc/passwd": {mode: 0o644, data: []byte(passwd)},
		"etc/group":  {mode: 0o644, data: []byte(group)},
		"tmp/":       {mode: 0o1777},
	}
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		if _, ok := files[d]; ok {
			return nil, fmt.Errorf("binary path %q is below a file of the image", binPath)
		}
		if _, ok := files[d+"/"]; !ok {
			files[d+"/"] = entry{mode: 0o755}
		}
	}
	if _, ok := files[rel]; ok {
		return nil, fmt.Errorf("binary path %q is a file of the image already", binPath)
	}
	if _, ok := files[rel+"/"]; ok {
		return nil, fmt.Errorf("binary path %q is a directory of the image", binPath)
	}
	files[rel] = entry{mode: 0o755, data: bin}

	mtime = mtime.UTC().Truncate(time.Second)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A directory sorts before everything in it: "a/" is a prefix of "a/b".
	for _, name := range slices.Sorted(maps.Keys(files)) {
		e := files[name]
		h := &tar.Header{Name: name, Mode: e.mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if strings.HasSuffix(name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Layer returns LayerTar as an OCI layer (gzip, compressed once and kept in memory).
func Layer(binPath string, bin []byte, mtime time.Time) (v1.Layer, error) {
	b, err := LayerTar(binPath, bin, mtime)
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	return plainLayer{l}, nil
}

// plainLayer hides the tarball layer's Descriptor method, whose empty (not nil) annotations map made the
// in-memory manifest differ from its JSON (validate.Image refuses that); the JSON is the same either way.
type plainLayer struct{ v1.Layer }
