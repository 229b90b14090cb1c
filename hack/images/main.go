// Command images builds the manager and sidecar images from the working tree without Docker (`make
// images`; docs/images.md): static binaries on an empty base, one OCI index per image for every
// platform, written as OCI layout tarballs that `ctr images import` loads, and optionally pushed.
//
//	go run ./hack/images                                   # bin/images/{manager,sidecar}.tar, digests.txt
//	go run ./hack/images -registry registry.example.com/claude-guard -push
//	go run ./hack/images -platforms linux/amd64 -images sidecar -out /tmp/img
//
// It prints one line per image: <ref>@<digest> <tarball>. The same commit (and SOURCE_DATE_EPOCH, if
// set) and Go toolchain give the same digests.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/claude-guard/claude-guard/internal/imagebuild"
)

func main() {
	var (
		o         imagebuild.Options
		platforms string
		images    string
	)
	var defaultPlatforms []string
	for _, p := range imagebuild.DefaultPlatforms {
		defaultPlatforms = append(defaultPlatforms, p.String())
	}
	flag.StringVar(&o.Out, "out", "bin/images", "Directory for <image>.tar and digests.txt; empty writes nothing (with -push).")
	flag.StringVar(&platforms, "platforms", strings.Join(defaultPlatforms, ","), "Comma-separated platforms of every image (linux/<arch>[/<variant>]).")
	flag.StringVar(&o.Registry, "registry", imagebuild.DefaultRegistry, "Registry and path prefix: images are <registry>/<image>:<version>.")
	flag.StringVar(&o.Version, "version", "", "Tag and version label (default: appVersion of charts/claude-guard/Chart.yaml).")
	flag.BoolVar(&o.Push, "push", false, "Also push the indexes to the registry (credentials: the Docker config, ~/.docker/config.json).")
	flag.StringVar(&images, "images", "manager,sidecar", "Comma-separated subset of the images to build.")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	for _, s := range split(platforms) {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			fail(2, fmt.Errorf("-platforms: %w", err))
		}
		o.Platforms = append(o.Platforms, *p)
	}
	o.Images = split(images)
	if o.Out == "" && !o.Push {
		fail(2, fmt.Errorf("-out is empty and -push is not set: nothing to do"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results, err := imagebuild.BuildRepoImages(ctx, o)
	if err != nil {
		fail(1, err)
	}
	for _, r := range results {
		fmt.Println(strings.TrimSpace(r.Pinned() + " " + r.Path))
	}
}

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "images:", err)
	os.Exit(code)
}
