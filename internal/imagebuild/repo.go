package imagebuild

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/internal/wellknown"
)

// RepoImage is one image of this repository: the binary of Package at Path.
type RepoImage struct {
	Name    string // image (and binary) name, the last element of Package
	Package string
	Path    string
}

// RepoImages are the images `make images` builds.
var RepoImages = []RepoImage{
	{Name: "manager", Package: "./cmd/manager", Path: wellknown.ManagerBinary},
	{Name: "sidecar", Package: "./cmd/sidecar", Path: wellknown.SidecarBinary},
}

// Defaults of Options (and of hack/images' flags).
const DefaultRegistry = "ghcr.io/claude-guard"

// DefaultPlatforms are the platforms the published images are built for.
var DefaultPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Options say which of the repository's images BuildRepoImages builds and where they go. The zero value
// builds every image for DefaultPlatforms, tagged <DefaultRegistry>/<name>:<chart appVersion>, and
// neither writes nor pushes them.
type Options struct {
	// Dir is the repository root; empty means the git top level of the working directory.
	Dir string
	// Out receives <name>.tar (an OCI layout tarball) per image and digests.txt; empty writes nothing.
	Out string
	// Registry is the repository prefix: images are <Registry>/<name>:<Version>.
	Registry string
	// Version is the tag and the version label; empty means the appVersion of charts/claude-guard.
	Version string
	// Platforms to build; empty means DefaultPlatforms.
	Platforms []v1.Platform
	// Catalog is the set of images to choose from; empty means RepoImages (tests build their own
	// images, such as a fake API server, the same way).
	Catalog []RepoImage
	// Images names the Catalog's images to build; empty means all.
	Images []string
	// Push pushes each index to its reference (Push).
	Push bool
	// Created is the images' creation time; zero means $SOURCE_DATE_EPOCH, else HEAD's commit time.
	Created time.Time
	// Go is the go command; empty means "go" from PATH. The toolchain's version is part of the binaries.
	Go string
	// Log receives go build's output; nil means os.Stderr.
	Log io.Writer
}

// Result is one built image.
type Result struct {
	Name   string
	Ref    string // <registry>/<name>:<version>
	Digest v1.Hash
	Path   string // the tarball, if Options.Out was set
	Index  v1.ImageIndex
}

// Pinned is Ref@Digest, what digests.txt lists and a pod spec can pull by.
func (r Result) Pinned() string { return r.Ref + "@" + r.Digest.String() }

// BuildRepoImages cross-compiles the selected images' binaries for each platform from the working tree
// (CGO_ENABLED=0, -trimpath, no build id, no VCS stamp, GOFLAGS cleared: the binaries depend on the
// tree and the toolchain only), builds their indexes, and writes and pushes them as o says. The labels
// come from git (revision, "-dirty" if `git status --porcelain` lists anything) and the chart (version,
// source: Chart.yaml's home).
func BuildRepoImages(ctx context.Context, o Options) ([]Result, error) {
	if err := o.complete(ctx); err != nil {
		return nil, err
	}
	selected, err := o.selected()
	if err != nil {
		return nil, err
	}
	meta, err := o.metadata(ctx)
	if err != nil {
		return nil, err
	}
	refs := make([]string, len(selected))
	for i, ri := range selected {
		refs[i] = o.Registry + "/" + ri.Name + ":" + o.Version
		if _, err := name.NewTag(refs[i], name.StrictValidation); err != nil {
			return nil, fmt.Errorf("image reference %q: %w", refs[i], err)
		}
	}
	images, err := o.platformImages(ctx, selected, meta)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(selected))
	for i, ri := range selected {
		if results[i], err = o.result(ctx, ri, refs[i], meta, images[i]); err != nil {
			return nil, err
		}
	}
	return results, o.writeDigests(results)
}

// selected returns the Catalog's images that Images names, in that order.
func (o *Options) selected() ([]RepoImage, error) {
	var selected []RepoImage
	for _, n := range o.Images {
		i := slices.IndexFunc(o.Catalog, func(ri RepoImage) bool { return ri.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown image %q (have %s)", n, strings.Join(catalogNames(o.Catalog), ", "))
		}
		selected = append(selected, o.Catalog[i])
	}
	return selected, nil
}

// metadata reads the labels' values from the chart and git, and the version if none was given.
func (o *Options) metadata(ctx context.Context) (Metadata, error) {
	chart, err := readChart(o.Dir)
	if err != nil {
		return Metadata{}, err
	}
	if o.Version == "" {
		o.Version = chart.AppVersion
	}
	meta := Metadata{Created: o.Created, Source: chart.Home, Version: o.Version}
	meta.Revision, err = gitRevision(ctx, o.Dir)
	return meta, err
}

// platformImages builds every selected image for every platform: images[i] are selected[i]'s.
func (o *Options) platformImages(ctx context.Context, selected []RepoImage, meta Metadata) ([][]v1.Image, error) {
	tmp, err := os.MkdirTemp("", "imagebuild-bin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	images := make([][]v1.Image, len(selected))
	for _, p := range o.Platforms {
		bins, err := o.goBuild(ctx, p, filepath.Join(tmp, strings.ReplaceAll(p.String(), "/", "-")), selected, meta)
		if err != nil {
			return nil, err
		}
		for i, ri := range selected {
			img, err := Image(Spec{Binary: bins[i], Path: ri.Path, Platform: p, Metadata: titled(meta, ri)})
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", ri.Name, p, err)
			}
			images[i] = append(images[i], img)
		}
	}
	return images, nil
}

func titled(m Metadata, ri RepoImage) Metadata {
	m.Title = "claude-guard " + ri.Name
	return m
}

// result indexes one image's platform images and writes and pushes the index as o says.
func (o *Options) result(ctx context.Context, ri RepoImage, ref string, meta Metadata, images []v1.Image) (Result, error) {
	idx, err := Index(titled(meta, ri), images...)
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: ri.Name, Ref: ref, Index: idx}
	if r.Digest, err = idx.Digest(); err != nil {
		return r, err
	}
	if o.Out != "" {
		r.Path = filepath.Join(o.Out, ri.Name+".tar")
		if err := WriteOCIArchive(r.Path, r.Ref, idx); err != nil {
			return r, fmt.Errorf("%s: %w", r.Path, err)
		}
	}
	if o.Push {
		if err := Push(ctx, r.Ref, idx); err != nil {
			return r, fmt.Errorf("pushing %s: %w", r.Ref, err)
		}
	}
	return r, nil
}

// writeDigests writes Out/digests.txt: one pinned reference per image.
func (o *Options) writeDigests(results []Result) error {
	if o.Out == "" {
		return nil
	}
	var digests bytes.Buffer
	for _, r := range results {
		fmt.Fprintln(&digests, r.Pinned())
	}
	return os.WriteFile(filepath.Join(o.Out, "digests.txt"), digests.Bytes(), 0o644)
}

func (o *Options) complete(ctx context.Context) error {
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Registry == "" {
		o.Registry = DefaultRegistry
	}
	o.Registry = strings.TrimSuffix(o.Registry, "/")
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms
	}
	if len(o.Catalog) == 0 {
		o.Catalog = RepoImages
	}
	if len(o.Images) == 0 {
		o.Images = catalogNames(o.Catalog)
	}
	if o.Dir == "" {
		top, err := git(ctx, "", "rev-parse", "--show-toplevel")
		if err != nil {
			return err
		}
		o.Dir = top
	}
	if o.Created.IsZero() {
		var err error
		if o.Created, err = sourceDate(ctx, o.Dir); err != nil {
			return err
		}
	}
	if o.Out != "" {
		return os.MkdirAll(o.Out, 0o755)
	}
	return nil
}

// versionPkg is where the binaries' --version reads the release and the revision the image labels carry
// (set with -X: the build itself has no VCS stamp, so that it depends on the tree only).
const versionPkg = "github.com/claude-guard/claude-guard/internal/version"

// goBuild builds the images' packages for p into dir, in one go build (they share most packages), and
// returns the binaries in the order of images.
func (o *Options) goBuild(ctx context.Context, p v1.Platform, dir string, images []RepoImage, meta Metadata) ([][]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	env, err := goEnv(p)
	if err != nil {
		return nil, err
	}
	ldflags := fmt.Sprintf("-s -w -buildid= -X %s.release=%s -X %s.revision=%s", versionPkg, meta.Version, versionPkg, meta.Revision)
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + ldflags, "-o", dir + string(filepath.Separator)}
	for _, ri := range images {
		args = append(args, ri.Package)
	}
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build for %s: %w", p, err)
	}
	bins := make([][]byte, len(images))
	for i, ri := range images {
		if bins[i], err = os.ReadFile(filepath.Join(dir, ri.Name)); err != nil {
			return nil, err
		}
	}
	return bins, nil
}

// goEnv is the environment of a static build for p. Every variable that changes the code is set, so
// the caller's environment cannot: the instruction set level comes from the variant, the toolchain's
// default (amd64 v1, arm64 v8, arm v7) without one.
func goEnv(p v1.Platform) ([]string, error) {
	if p.OS != "linux" || p.Architecture == "" {
		return nil, fmt.Errorf("platform %q: want linux/<arch>[/<variant>]", p.String())
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + p.Architecture, "GOFLAGS="}
	variant := p.Variant
	switch p.Architecture {
	case "amd64":
		env = append(env, "GOAMD64="+cmp.Or(variant, "v1"))
	case "arm64":
		level := cmp.Or(variant, "v8")
		if !strings.Contains(level, ".") {
			level += ".0" // GOARM64 spells v8 v8.0
		}
		env = append(env, "GOARM64="+level)
	case "arm":
		env = append(env, "GOARM="+strings.TrimPrefix(cmp.Or(variant, "v7"), "v"))
	default:
		if variant != "" {
			return nil, fmt.Errorf("platform %s: variants are for amd64, arm64 and arm only", p)
		}
	}
	return env, nil
}

type chartMeta struct {
	AppVersion string `json:"appVersion"`
	Home       string `json:"home"`
}

func readChart(dir string) (chartMeta, error) {
	var c chartMeta
	b, err := os.ReadFile(filepath.Join(dir, "charts", "claude-guard", "Chart.yaml"))
	if err != nil {
		return c, err
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("reading the chart's Chart.yaml: %w", err)
	}
	if c.AppVersion == "" {
		return c, fmt.Errorf("the chart's Chart.yaml has no appVersion")
	}
	return c, nil
}

// sourceDate is $SOURCE_DATE_EPOCH if set, else the commit time of HEAD.
func sourceDate(ctx context.Context, dir string) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		var err error
		if s, err = git(ctx, dir, "log", "-1", "--format=%ct", "HEAD"); err != nil {
			return time.Time{}, err
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("source date %q: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// gitRevision is HEAD, with "-dirty" if the working tree differs from it (untracked files included).
func gitRevision(ctx context.Context, dir string) (string, error) {
	rev, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	status, err := git(ctx, dir, "status", "--porcelain")
	if err != nil {
		return "", err
	}
	if status != "" {
		rev += "-dirty"
	}
	return rev, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

func catalogNames(c []RepoImage) []string {
	names := make([]string, len(c))
	for i, ri := range c {
		names[i] = ri.Name
	}
	return names
}
